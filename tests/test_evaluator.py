import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, f1_score

import keras
import pretrainlib as pl
from pretrainlib.evaluation import metrics


class FixedPredictions(keras.Model):
    """A 'model' whose logits are given: lets tests pin predictions exactly."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def call(self, x):
        return tf.one_hot(tf.cast(x, "int32"), self.num_classes)


def evaluate(predicted, labels, num_classes, batch_size=7):
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(predicted), np.asarray(labels)))
    model = FixedPredictions(num_classes)
    return pl.Evaluator(["accuracy", "macro_f1"]).evaluate(model, ds.batch(batch_size))


def test_metrics_match_sklearn_on_real_predictions(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6), policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=3e-3)
    ft.fit(labeled(n=96), epochs=2, verbose=0)
    test = labeled(n=300, split="test", shuffle=False, batch_size=64)
    report = pl.Evaluator(["accuracy", "macro_f1"]).evaluate(ft, test)
    labels = np.concatenate([y.numpy() for _, y in test])
    predicted = np.concatenate([ft.predict_on_batch(x).argmax(-1) for x, _ in test])
    assert report.num_examples == 300
    assert report.metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert report.metrics["macro_f1"] == pytest.approx(
        f1_score(labels, predicted, average="macro"))


@pytest.mark.parametrize(
    "predicted, labels",
    [
        ([0, 0, 1, 1, 0], [0, 1, 1, 2, 2]),  # class 2 never predicted
        ([0, 1, 3, 1], [0, 1, 1, 1]),  # class 3 absent from the labels
        ([2, 2, 2], [2, 2, 2]),  # a single class
    ],
)
def test_edge_cases_match_sklearn(predicted, labels):
    report = evaluate(predicted, labels, num_classes=4, batch_size=2)
    assert report.metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert report.metrics["macro_f1"] == pytest.approx(
        f1_score(labels, predicted, average="macro", zero_division=0))


def test_macro_f1_training_metric_matches_evaluator():
    rng = np.random.default_rng(0)
    labels, logits = rng.integers(0, 5, 200), rng.normal(size=(200, 5))
    metric = pl.training.MacroF1(5)
    for i in range(0, 200, 32):
        metric.update_state(labels[i:i + 32], logits[i:i + 32])
    confusion = metrics.confusion_matrix(labels, logits.argmax(-1), 5)
    assert float(metric.result()) == pytest.approx(metrics.macro_f1(confusion), abs=1e-6)


def test_report_formats(tmp_path):
    report = evaluate([0, 1, 1, 0], [0, 1, 0, 0], num_classes=2)
    assert "accuracy" in str(report) and "macro_f1" in str(report)
    assert "| accuracy | 0.7500 |" in report.to_markdown()
    data = report.to_dict()
    assert data["metrics"]["accuracy"] == 0.75 and data["confusion"] == [[2, 1], [0, 1]]
    path = report.plot(str(tmp_path / "confusion.png"))
    assert (tmp_path / "confusion.png").stat().st_size > 1000 and path.endswith(".png")


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="Unknown metric 'f2'"):
        pl.Evaluator(["f2"])
    with pytest.raises(ValueError, match="mixes tasks"):
        pl.Evaluator(["accuracy", "perplexity"])
    model = FixedPredictions(2)
    with pytest.raises(ValueError, match="per-token logits"):  # perplexity on a classifier
        pl.Evaluator(["perplexity"]).evaluate(
            model, tf.data.Dataset.from_tensor_slices((np.zeros(4), np.zeros(4, "int64"))).batch(2))
    with pytest.raises(TypeError, match="dataset"):
        pl.Evaluator().evaluate(model, [1, 2, 3])
    empty = tf.data.Dataset.from_tensor_slices((np.zeros(0), np.zeros(0))).batch(2)
    with pytest.raises(ValueError, match="empty"):
        pl.Evaluator().evaluate(model, empty)
    unlabeled = tf.data.Dataset.from_tensor_slices(np.zeros(4)).batch(2)
    with pytest.raises(ValueError, match="targets"):
        pl.Evaluator().evaluate(model, unlabeled)
    mismatched = tf.data.Dataset.from_tensor_slices((np.zeros(4), np.zeros((4, 3)))).batch(2)
    with pytest.raises(ValueError, match=r"\[batch, classes\] outputs for \[batch\] labels"):
        pl.Evaluator().evaluate(model, mismatched)
    with pytest.raises(ValueError, match="bootstrap"):
        pl.Evaluator(bootstrap=-1)
    with pytest.raises(ValueError, match="confidence"):
        pl.Evaluator(bootstrap=10, confidence=1.0)
    with pytest.raises(ValueError, match="`metrics` is empty"):
        pl.Evaluator([])
