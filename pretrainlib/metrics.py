"""Keras metrics the training core reports during `fit` (for early stopping)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pretrainlib")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 from integer labels and logits, exact over an epoch.

    Keras's `F1Score` wants one-hot labels; this takes sparse labels, as the
    classification heads' loss does, and accumulates a confusion matrix so the
    epoch value is exact rather than an average of per-batch scores. Classes seen
    in neither labels nor predictions are left out of the mean, as in
    `pl.Evaluator` and scikit-learn.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> m = pl.training.MacroF1(num_classes=2)
        >>> m.update_state(np.array([0, 1]), np.array([[2.0, 0.0], [3.0, 1.0]]))
        >>> round(float(m.result()), 4)
        0.3333
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        predicted = ops.cast(ops.argmax(ops.reshape(y_pred, (-1, self.num_classes)), -1),
                             "int32")
        pairs = ops.one_hot(labels * self.num_classes + predicted,
                            self.num_classes * self.num_classes)
        if sample_weight is not None:
            pairs = pairs * ops.reshape(ops.cast(sample_weight, pairs.dtype), (-1, 1))
        counts = ops.reshape(ops.sum(pairs, axis=0), (self.num_classes, self.num_classes))
        self.confusion.assign_add(ops.cast(counts, self.confusion.dtype))

    def result(self):
        c = self.confusion
        tp = ops.diagonal(c)
        predicted, actual = ops.sum(c, axis=0), ops.sum(c, axis=1)
        precision = ops.divide_no_nan(tp, predicted)
        recall = ops.divide_no_nan(tp, actual)
        f1 = ops.divide_no_nan(2 * precision * recall, precision + recall)
        present = ops.cast((predicted + actual) > 0, f1.dtype)
        return ops.divide_no_nan(ops.sum(f1 * present), ops.sum(present))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def squared_error(y_true, y_pred):
    """Squared error per position: averaged over channels for images `[b, h, w, c]`
    (giving `[b, h, w]`), per feature for vectors `[b, d]`. Position-level values let
    a per-pixel (or per-feature) sample weight select what a loss or metric counts."""
    error = ops.square(ops.cast(y_true, y_pred.dtype) - y_pred)
    return ops.mean(error, axis=-1) if len(error.shape) > 2 else error


@keras.saving.register_keras_serializable(package="pretrainlib")
class PSNR(keras.metrics.Metric):
    """Peak signal-to-noise ratio in dB, averaged over examples.

    Each example's PSNR is `10 log10(max_value**2 / mse)`, its MSE taken over the
    positions its sample weight selects (all of them without weights); examples
    with no selected position are skipped.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> m = pl.training.PSNR()
        >>> m.update_state(np.zeros((1, 2, 2, 1)), np.full((1, 2, 2, 1), 0.1))
        >>> round(float(m.result()), 2)
        20.0
    """

    def __init__(self, max_value: float = 1.0, name: str = "psnr", **kwargs):
        super().__init__(name=name, **kwargs)
        self.max_value = max_value
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, "float32")
        error = squared_error(ops.cast(y_true, "float32"), y_pred)
        weight = ops.ones_like(error)
        if sample_weight is not None:  # per position, or per example
            sample_weight = ops.cast(sample_weight, "float32")
            while len(sample_weight.shape) < len(error.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * sample_weight
        axes = tuple(range(1, len(error.shape)))
        selected = ops.sum(weight, axis=axes) if axes else weight
        total_error = ops.sum(error * weight, axis=axes) if axes else error * weight
        mse = ops.divide_no_nan(total_error, selected)
        psnr = 10.0 * ops.log10(self.max_value ** 2 / ops.maximum(mse, 1e-10))
        present = ops.cast(selected > 0, "float32")
        self.total.assign_add(ops.sum(psnr * present))
        self.count.assign_add(ops.sum(present))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value}
