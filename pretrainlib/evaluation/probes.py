"""The standard yardsticks of a pretrained backbone: k-nearest-neighbour and linear-probe
classification of its frozen features.

Both embed labeled data with the backbone once (its pooled features, in inference
mode) and classify the test features from the training features alone, with no
fine-tuning: a kNN vote by cosine similarity, and multinomial logistic regression.
They are what self-supervised papers report (kNN for monitoring, the linear probe
as the headline), and they agree with scikit-learn's `KNeighborsClassifier(
metric="cosine")` and `LogisticRegression(C=c)` on standardized features.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.backbones.outputs import model_input, pooled_features


def embed(backbone: keras.Model, data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(features [n, d], labels [n])`: `backbone`'s pooled features of `data` (a
    `tf.data.Dataset` of `(inputs, labels)` batches, or a pair of arrays; uint8
    images are divided by 255 as `pl.data.image_dataset` does)."""
    if not isinstance(backbone, keras.Model):
        raise TypeError("`backbone` must be a keras.Model (e.g. `pretrainer.backbone`). "
                        f"Received: backbone of type {type(backbone).__name__}")
    dataset = _dataset(data, name)
    inputs = model_input(backbone)
    extractor = keras.Model(inputs, pooled_features(backbone(inputs)))
    features, labels = [], []
    for x, y in dataset:
        features.append(np.asarray(extractor.predict_on_batch(x), "float64"))
        labels.append(np.asarray(y).reshape(-1))
    if not features:
        raise ValueError(f"`{name}` is empty; it yielded no batch.")
    labels = np.concatenate(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"`{name}` must have non-negative integer class labels.")
    return np.concatenate(features), labels.astype("int64")


def _dataset(data, name: str) -> tf.data.Dataset:
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise ValueError(f"`{name}` must yield (inputs, labels) batches, e.g. "
                             "pl.data.image_dataset(images, labels, shuffle=False).")
        return data
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"`{name}` must be a tf.data.Dataset of (inputs, labels) or a pair "
                         f"(inputs, labels) of arrays. Received: {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"`{name}` has {len(x)} inputs but {len(y)} labels.")
    if x.dtype == np.uint8:
        x = (x[..., None] if x.ndim == 3 else x).astype("float32") / 255
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(256)


def knn_scores(train_features: np.ndarray, train_labels: np.ndarray,
               features: np.ndarray, k: int, num_classes: int) -> np.ndarray:
    """`[n, classes]`: the fraction of each example's `k` nearest training examples (by
    cosine similarity) in each class; its argmax (the lowest class on a tie, as
    scikit-learn's vote) is the kNN prediction."""
    train = _unit_rows(train_features)
    scores = np.zeros((len(features), num_classes))
    for start in range(0, len(features), 1024):  # bounded memory: [1024, n_train] at once
        chunk = _unit_rows(features[start:start + 1024])
        similarity = chunk @ train.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        votes = train_labels[nearest]  # [chunk, k] -> counts per class, vectorized
        scores[start:start + len(chunk)] = (
            votes[:, :, None] == np.arange(num_classes)).sum(axis=1) / k
    return scores


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class LogisticRegression:
    """Multinomial logistic regression with an L2 penalty, fitted by L-BFGS: minimizes
    `0.5 * |W|^2 + c * sum_i CE(y_i, x_i W + b)` (scikit-learn's `LogisticRegression(
    C=c)` objective; the bias is not penalized) on features standardized with the
    training set's mean and deviation.

    Written here (about 60 lines of NumPy) rather than taken from scikit-learn, which
    pretrainlib does not depend on; the problem is convex, so any solver run to
    convergence finds the same classifier.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.evaluation.probes import LogisticRegression
        >>> x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
        >>> LogisticRegression(c=10.0).fit(x, y).predict(np.array([[0.2], [2.8]])).tolist()
        [0, 1]
    """

    def __init__(self, c: float = 1.0, tolerance: float = 1e-8, max_iterations: int = 2000):
        self.c = validation.positive_float("c", c)
        self.tolerance, self.max_iterations = tolerance, max_iterations

    def fit(self, x: np.ndarray, y: np.ndarray, num_classes: int | None = None):
        x = np.asarray(x, "float64")
        self.mean, self.scale = x.mean(0), x.std(0)
        self.scale[self.scale == 0] = 1.0
        x = (x - self.mean) / self.scale
        k = int(num_classes or y.max() + 1)
        onehot = np.eye(k)[y]
        d = x.shape[1]

        def loss_and_gradient(w):
            weights, bias = w[:d * k].reshape(d, k), w[d * k:]
            logits = x @ weights + bias
            logits -= logits.max(1, keepdims=True)
            log_norm = np.log(np.exp(logits).sum(1))
            probabilities = np.exp(logits - log_norm[:, None])
            loss = 0.5 * (weights ** 2).sum() + self.c * (log_norm - (logits * onehot).sum(1)).sum()
            error = self.c * (probabilities - onehot)
            return loss, np.concatenate([(x.T @ error + weights).ravel(), error.sum(0)])

        w = _lbfgs(loss_and_gradient, np.zeros(d * k + k), self.tolerance,
                   self.max_iterations)
        self.weights, self.bias = w[:d * k].reshape(d, k), w[d * k:]
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, "float64") - self.mean) / self.scale) @ self.weights + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.decision_function(x).argmax(1)


def _lbfgs(function, w, tolerance: float, max_iterations: int, memory: int = 10):
    """Minimizes a smooth convex `function(w) -> (value, gradient)` by L-BFGS with a
    backtracking (Armijo) line search; stops when the gradient's largest entry is
    below `tolerance` times max(1, |value|)."""
    value, gradient = function(w)
    steps, changes = [], []
    for _ in range(max_iterations):
        if np.abs(gradient).max() <= tolerance * max(1.0, abs(value)):
            break
        direction = -gradient  # two-loop recursion: direction = -H gradient
        alphas = []
        for s, y in reversed(list(zip(steps, changes))):
            alpha = s @ direction / (y @ s)
            alphas.append(alpha)
            direction = direction - alpha * y
        if steps:
            direction *= (steps[-1] @ changes[-1]) / (changes[-1] @ changes[-1])
        for (s, y), alpha in zip(zip(steps, changes), reversed(alphas)):
            direction = direction + s * (alpha - y @ direction / (y @ s))
        slope = gradient @ direction
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps, changes, direction, slope = [], [], -gradient, -(gradient @ gradient)
        size = 1.0 if steps else min(1.0, 1.0 / np.abs(gradient).max())
        while True:
            new_value, new_gradient = function(w + size * direction)
            if new_value <= value + 1e-4 * size * slope or size < 1e-12:
                break
            size *= 0.5
        s, y = size * direction, new_gradient - gradient
        w, value, gradient = w + s, new_value, new_gradient
        if y @ s > 1e-12:
            steps.append(s)
            changes.append(y)
            if len(steps) > memory:
                steps.pop(0)
                changes.pop(0)
    return w
