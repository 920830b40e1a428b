"""Label-efficiency studies and k-fold cross-validation on real Fashion-MNIST."""

import keras
import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.evaluation.studies import subset


@pytest.fixture(scope="module")
def fm():
    return pl.datasets.fashion_mnist()


def softmax_regression(part, seed):
    """A small Keras model trained on `part` (a LabeledImages)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(pl.data.image_dataset(part.images, part.labels, batch_size=32, seed=seed),
              epochs=15, verbose=0, shuffle=False)  # the dataset shuffles itself
    return model


@pytest.mark.slow
def test_label_efficiency_study_table_and_plot(fm, tmp_path):
    test = fm.test.sample(500, seed=0)
    test_ds = pl.data.image_dataset(test.images, test.labels, batch_size=250, shuffle=False)
    seen = []

    def majority(part, seed):
        seen.append((len(part), seed, part.labels.tolist()))
        guess = np.bincount(part.labels).argmax()
        return {"accuracy": float(np.mean(test.labels == guess)), "macro_f1": 0.0}

    evaluator = pl.Evaluator(["accuracy", "macro_f1"])
    study = evaluator.label_efficiency({"softmax regression": softmax_regression,
                                        "majority class": majority},
                                       fm.train, test_ds, budgets=[200, 20], seeds=2)
    summary = study.summary()
    assert sorted(summary["softmax regression"]) == [20, 200]
    assert len(study.runs) == 2 * 2 * 2
    more, fewer = (summary["softmax regression"][b]["accuracy"]["mean"] for b in (200, 20))
    assert more > fewer > 0.2  # more labels help; both beat chance (0.1)
    assert summary["majority class"][20]["accuracy"]["mean"] == pytest.approx(0.1)
    # Seed s draws the same stratified subset for every arm.
    assert [s[:2] for s in seen] == [(20, 0), (20, 1), (200, 0), (200, 1)]
    assert all(np.bincount(labels).min() >= 2 for n, _, labels in seen)
    table = study.to_markdown("accuracy")
    assert table.splitlines()[0] == "| labels | softmax regression | majority class |"
    assert "| 20 | " in table and "±" in table
    path = study.plot(str(tmp_path / "curve.png"), metric="accuracy")
    assert (tmp_path / "curve.png").stat().st_size > 5000 and path.endswith(".png")
    assert study.to_dict()["summary"]["majority class"][200]["accuracy"]["n"] == 2


@pytest.mark.slow
def test_cross_validation_folds_are_stratified_and_disjoint(fm):
    data = fm.validation.sample(300, seed=0)
    parts = []

    def train(part, fold):
        parts.append(part)
        return softmax_regression(part, fold)

    def make_dataset(part):
        parts.append(part)
        return pl.data.image_dataset(part.images, part.labels, batch_size=100, shuffle=False)

    cv = pl.Evaluator(["accuracy"]).cross_validate(train, data, make_dataset, folds=3)
    assert len(cv.runs) == 3 and all(0.3 < r["accuracy"] <= 1 for r in cv.runs)
    held_out = parts[1::2]
    assert sum(len(p) for p in held_out) == len(data)
    for train_part, test_part in zip(parts[::2], held_out):
        assert len(train_part) + len(test_part) == len(data)
        assert np.bincount(test_part.labels, minlength=10).tolist() == [10] * 10
    with pytest.raises(ValueError, match="folds"):
        pl.Evaluator(["accuracy"]).cross_validate(train, data, make_dataset, folds=31)


def test_subset_slices_texts_and_study_errors(wordnet):
    part = subset(wordnet.test, np.array([3, 1]))
    assert part.texts == [wordnet.test.texts[3], wordnet.test.texts[1]]
    evaluator = pl.Evaluator(["accuracy"])
    with pytest.raises(ValueError, match="arms"):
        evaluator.label_efficiency({}, wordnet.train, None, budgets=[10])
    with pytest.raises(TypeError, match="Keras model or a dict"):
        evaluator.label_efficiency({"bad": lambda part, seed: 0.5}, wordnet.train, None,
                                   budgets=[10], seeds=1)
    with pytest.raises(ValueError, match="without"):
        evaluator.label_efficiency({"bad": lambda part, seed: {"f1": 1.0}}, wordnet.train,
                                   None, budgets=[10], seeds=1)
