"""Evaluator metrics for every task equal a reference computation; bootstrap intervals."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

import pretrainlib as pl


class Given(keras.Model):
    """A 'model' that returns the outputs stored for each input index."""

    def __init__(self, outputs):
        super().__init__()
        self.table = tf.constant(outputs)

    def call(self, index):
        return tf.gather(self.table, tf.cast(index, "int32"))


def run(metrics, outputs, targets, weights=None, batch_size=16, **kwargs):
    index = np.arange(len(targets))
    parts = (index, targets) if weights is None else (index, targets, weights)
    ds = tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)
    return pl.Evaluator(metrics, **kwargs).evaluate(Given(outputs), ds)


@pytest.fixture(scope="module")
def real_classifier_outputs():
    """Logits of a linear classifier on real Fashion-MNIST test images."""
    fm = pl.datasets.fashion_mnist()
    train, test = fm.train.sample(500, seed=0), fm.test.sample(600, seed=1)
    x = train.images.reshape(500, -1) / 255.0
    onehot = np.eye(10)[train.labels]
    weights = np.linalg.solve(x.T @ x + 10 * np.eye(784), x.T @ onehot)
    return (test.images.reshape(600, -1) / 255.0 @ weights).astype("float32"), test.labels


def test_classification_metrics_match_sklearn_on_real_predictions(real_classifier_outputs):
    logits, labels = real_classifier_outputs
    names = ["accuracy", "top_3_accuracy", "macro_f1", "micro_f1", "weighted_f1",
             "macro_precision", "weighted_recall"]
    report = run(names, logits, labels)
    predicted = logits.argmax(-1)
    expected = {
        "accuracy": sk.accuracy_score(labels, predicted),
        "top_3_accuracy": sk.top_k_accuracy_score(labels, logits, k=3),
        "macro_f1": sk.f1_score(labels, predicted, average="macro"),
        "micro_f1": sk.f1_score(labels, predicted, average="micro"),
        "weighted_f1": sk.f1_score(labels, predicted, average="weighted"),
        "macro_precision": sk.precision_score(labels, predicted, average="macro"),
        "weighted_recall": sk.recall_score(labels, predicted, average="weighted"),
    }
    for name, value in expected.items():
        assert report.metrics[name] == pytest.approx(value, abs=1e-12), name


def test_binary_roc_auc_matches_sklearn_with_ties(real_classifier_outputs):
    logits, labels = real_classifier_outputs
    keep = np.isin(labels, [0, 6])  # t-shirt vs shirt: a hard pair
    binary = np.round(logits[keep][:, [0, 6]] * 8) / 8  # exact in binary; creates ties
    target = (labels[keep] == 6).astype("int64")
    report = run(["roc_auc", "accuracy"], binary, target)
    assert report.metrics["roc_auc"] == pytest.approx(
        sk.roc_auc_score(target, binary[:, 1] - binary[:, 0]), abs=1e-12)
    with pytest.raises(ValueError, match="two classes"):
        run(["roc_auc"], logits, labels)


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 2))
    prediction = target + rng.normal(scale=0.3, size=(50, 2))
    report = run(["mae", "rmse", "r2"], prediction, target)
    assert report.metrics["mae"] == pytest.approx(sk.mean_absolute_error(target, prediction))
    assert report.metrics["rmse"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(target, prediction)))
    assert report.metrics["r2"] == pytest.approx(sk.r2_score(target, prediction))
    assert report.confusion is None and "per_class" not in report.to_dict()


def test_language_modeling_metrics_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 7, 30)).astype("float32")
    labels = rng.integers(0, 30, size=(12, 7))
    weights = (rng.random((12, 7)) < 0.6).astype("float32")
    report = run(["cross_entropy", "perplexity", "token_accuracy"], logits, labels, weights)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    ce = (nll * weights).sum() / weights.sum()
    assert report.metrics["cross_entropy"] == pytest.approx(ce, rel=1e-6)
    assert report.metrics["perplexity"] == pytest.approx(np.exp(ce), rel=1e-6)
    assert report.metrics["token_accuracy"] == pytest.approx(
        ((logits.argmax(-1) == labels) * weights).sum() / weights.sum())


def test_reconstruction_metrics_on_real_images():
    images = pl.datasets.fashion_mnist().test.images[:40, :, :, None] / 255.0
    noisy = np.clip(images + np.random.default_rng(0).normal(scale=0.1, size=images.shape), 0, 1)
    report = run(["mse", "psnr"], noisy.astype("float32"), images.astype("float32"))
    per_image = ((noisy - images) ** 2).mean(axis=(1, 2, 3))
    assert report.metrics["mse"] == pytest.approx(per_image.mean(), rel=1e-6)
    assert report.metrics["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / per_image)),
                                                   rel=1e-6)


def test_bootstrap_intervals_bracket_the_estimate_and_are_seeded(real_classifier_outputs):
    logits, labels = real_classifier_outputs
    a = run(["accuracy", "macro_f1"], logits, labels, bootstrap=300, seed=1)
    b = run(["accuracy", "macro_f1"], logits, labels, bootstrap=300, seed=1)
    assert a.intervals == b.intervals
    for name, (low, high) in a.intervals.items():
        assert low < a.metrics[name] < high
    low, high = a.intervals["accuracy"]
    p = a.metrics["accuracy"]  # normal approximation of a proportion's interval
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / len(labels)), rel=0.2)
    assert "95% bootstrap intervals" in str(a) and "interval" in a.to_markdown()
    assert a.to_dict()["intervals"]["accuracy"] == [low, high]


def test_ensemble_averages_probabilities_and_regression_outputs(real_classifier_outputs):
    logits, labels = real_classifier_outputs
    other = np.roll(logits, 1, axis=1)  # a second, different "model"
    index = np.arange(len(labels))
    ds = tf.data.Dataset.from_tensor_slices((index, labels)).batch(64)
    report = pl.Evaluator(["accuracy"]).evaluate([Given(logits), Given(other)], ds)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    averaged = (softmax(logits.astype("float64")) + softmax(other.astype("float64"))) / 2
    assert report.metrics["accuracy"] == pytest.approx(np.mean(averaged.argmax(-1) == labels))
    target = np.linspace(0, 1, 20)[:, None]
    ds = tf.data.Dataset.from_tensor_slices((np.arange(20), target)).batch(8)
    mae = pl.Evaluator(["mae"]).evaluate([Given(target + 0.2), Given(target - 0.1)], ds)
    assert mae.metrics["mae"] == pytest.approx(0.05)
    with pytest.raises(TypeError, match="ensemble"):
        pl.Evaluator(["mae"]).evaluate([], ds)


def test_most_confident_mistakes_are_the_surest_wrong_predictions(real_classifier_outputs,
                                                                   tmp_path):
    logits, labels = real_classifier_outputs
    fm = pl.datasets.fashion_mnist()
    images = fm.test.sample(600, seed=1).images
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(labels)), labels)).batch(50)
    evaluator = pl.Evaluator(["accuracy"], class_names=fm.class_names)
    mistakes = evaluator.most_confident_mistakes(Given(logits), ds, k=6, inputs=images)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    wrong = np.flatnonzero(probs.argmax(-1) != labels)
    expected = wrong[np.argsort(-probs[wrong].max(-1))][:6]
    assert [m["index"] for m in mistakes] == expected.tolist()
    assert all(m["label"] != m["predicted"] for m in mistakes)
    np.testing.assert_array_equal(mistakes[0]["input"], images[expected[0]])
    assert mistakes[0]["label_name"] == fm.class_names[labels[expected[0]]]
    path = pl.evaluation.plot_mistakes(mistakes, str(tmp_path / "mistakes.png"),
                                       class_names=fm.class_names)
    assert (tmp_path / "mistakes.png").stat().st_size > 2000 and path.endswith(".png")
    with pytest.raises(ValueError, match="classification"):
        pl.Evaluator(["mae"]).most_confident_mistakes(Given(logits), ds)
    with pytest.raises(ValueError, match="`k`"):
        evaluator.most_confident_mistakes(Given(logits), ds, k=0)


def png_size(path):
    """(width, height) in pixels, read from the PNG header."""
    with open(path, "rb") as f:
        header = f.read(24)
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_plot_draws_confusion_per_class_and_learning_curves(real_classifier_outputs, tmp_path):
    logits, labels = real_classifier_outputs
    report = run(["accuracy", "macro_f1"], logits, labels,
                 class_names=pl.datasets.fashion_mnist().class_names)
    alone = png_size(report.plot(str(tmp_path / "report.png")))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = np.random.default_rng(0).normal(size=(32, 3)), np.arange(32) % 2
    history = model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0)
    curves = png_size(report.plot(str(tmp_path / "curves.png"), history=history))
    # Two more panels (loss and accuracy, each train next to validation): a second row.
    assert curves[0] == alone[0] and curves[1] == pytest.approx(alone[1] * 2, rel=0.05)
    from_dict = png_size(report.plot(str(tmp_path / "dict.png"), history=history.history))
    assert from_dict == curves
    with pytest.raises(ValueError, match="`history` must be a keras.callbacks.History"):
        report.plot(str(tmp_path / "bad.png"), history=[0.5, 0.4])


def test_plot_of_a_regression_report_shows_metrics_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.normal(size=(60, 1))
    report = run(["mae", "rmse", "r2"], target + rng.normal(scale=0.3, size=(60, 1)), target,
                 bootstrap=100)
    width, height = png_size(report.plot(str(tmp_path / "regression.png")))
    assert width > 300 and height > 300


def test_plots_without_matplotlib_say_how_to_install_it(real_classifier_outputs, tmp_path,
                                                        monkeypatch):
    logits, labels = real_classifier_outputs
    report = run(["accuracy"], logits, labels)
    study = pl.evaluation.studies.StudyReport(
        [{"arm": "a", "budget": 10, "seed": 0, "accuracy": 0.5}], ["accuracy"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    for draw, name in [(lambda: report.plot(str(tmp_path / "r.png")), "Report.plot"),
                       (lambda: study.plot(str(tmp_path / "s.png")), "StudyReport.plot"),
                       (lambda: pl.evaluation.plot_mistakes([{}], str(tmp_path / "m.png")),
                        "plot_mistakes")]:
        with pytest.raises(ImportError, match=rf"{name} needs matplotlib: `pip install "
                                              r"matplotlib` \(or `pip install \"\.\[plot\]\"`"):
            draw()
    assert not list(tmp_path.iterdir())  # nothing half written
