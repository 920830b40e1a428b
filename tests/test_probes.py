"""kNN and linear-probe evaluation of frozen features equal scikit-learn's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib.evaluation.probes import LogisticRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def identity(dim):
    """A 'backbone' whose features are its inputs: the probes see fixed features."""
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def blobs(seed, n=300, dim=6, classes=4):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 1.5
    labels = rng.integers(0, classes, n)
    return (centers[labels] + rng.normal(size=(n, dim))).astype("float32"), labels


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_equals_scikit_learn_cosine_neighbours(k):
    (x, y), (tx, ty) = blobs(0), blobs(1)
    report = pl.Evaluator(metrics=["accuracy", "macro_f1"]).knn(identity(6), (x, y), (tx, ty),
                                                                k=k)
    reference = KNeighborsClassifier(k, metric="cosine", algorithm="brute").fit(x, y)
    predicted = reference.predict(tx)
    assert report.metrics["accuracy"] == pytest.approx(accuracy_score(ty, predicted), abs=1e-12)
    assert report.metrics["macro_f1"] == pytest.approx(
        f1_score(ty, predicted, average="macro"), abs=1e-12)
    assert report.num_examples == len(ty)


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_linear_probe_equals_scikit_learn_logistic_regression(c):
    (x, y), (tx, ty) = blobs(2), blobs(3)
    ours = LogisticRegression(c=c).fit(x, y)
    scaler = StandardScaler().fit(x.astype("float64"))  # float64, as ours computes
    theirs = SkLogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(
        scaler.transform(x.astype("float64")), y)
    np.testing.assert_allclose(ours.weights, theirs.coef_.T, atol=1e-5)
    np.testing.assert_allclose(ours.bias, theirs.intercept_, atol=1e-5)
    predicted = theirs.predict(scaler.transform(tx.astype("float64")))
    report = pl.Evaluator(metrics=["accuracy"]).linear_probe(identity(6), (x, y), (tx, ty), c=c)
    assert report.metrics["accuracy"] == pytest.approx(accuracy_score(ty, predicted), abs=1e-12)


def test_probes_take_datasets_and_uint8_images_and_keep_class_names():
    fm = pl.datasets.fashion_mnist()
    train, test = fm.train.sample(80, seed=0), fm.test.sample(40, seed=0)
    keras.utils.set_random_seed(0)
    backbone = pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1)
    evaluator = pl.Evaluator(metrics=["accuracy"], class_names=fm.class_names, bootstrap=20)
    from_arrays = evaluator.knn(backbone, (train.images, train.labels),
                                (test.images, test.labels), k=3)
    from_datasets = evaluator.knn(
        backbone, pl.data.image_dataset(train.images, train.labels, shuffle=False),
        pl.data.image_dataset(test.images, test.labels, shuffle=False), k=3)
    assert from_arrays.metrics == from_datasets.metrics
    assert from_arrays.class_names == tuple(fm.class_names)
    assert "accuracy" in from_arrays.intervals
    probe = evaluator.linear_probe(backbone, (train.images, train.labels),
                                   (test.images, test.labels))
    assert 0.0 <= probe.metrics["accuracy"] <= 1.0 and probe.num_examples == 40


def test_bad_probe_arguments_name_themselves():
    x, y = blobs(0, n=10)
    evaluator = pl.Evaluator(metrics=["accuracy"])
    with pytest.raises(ValueError, match="`k` must be at most"):
        evaluator.knn(identity(6), (x, y), (x, y), k=11)
    with pytest.raises(ValueError, match="`k`"):
        evaluator.knn(identity(6), (x, y), (x, y), k=0)
    with pytest.raises(ValueError, match="`c`"):
        evaluator.linear_probe(identity(6), (x, y), (x, y), c=0)
    with pytest.raises(ValueError, match="`train` has 10 inputs but 9 labels"):
        evaluator.knn(identity(6), (x, y[:9]), (x, y))
    with pytest.raises(ValueError, match="`test` must yield"):
        evaluator.knn(identity(6), (x, y), tf.data.Dataset.from_tensor_slices(x).batch(4), k=3)
    with pytest.raises(ValueError, match="classification metrics"):
        pl.Evaluator(metrics=["mae"]).knn(identity(6), (x, y), (x, y))
    with pytest.raises(TypeError, match="`backbone`"):
        evaluator.linear_probe("model", (x, y), (x, y))
