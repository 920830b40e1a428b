"""Regression head: features -> real-valued predictions."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.heads.dense_head import DenseHead


@keras.saving.register_keras_serializable(package="pretrainlib")
class Regressor(DenseHead):
    """Dropout and a dense layer (optionally an MLP) from features to real values.

    Reads the backbone's output as `pl.heads.Classifier` does. With `outputs=1` it
    predicts `[batch]` (one value per example, to match labels `[batch]`), otherwise
    `[batch, outputs]`. The FineTuner's defaults for it: mean squared error, with
    mean absolute error and root mean squared error as metrics. Regression targets
    are often on any scale: standardize them (and scale predictions back) unless they
    are already near unit variance.

    Args:
        outputs: values predicted per example.
        feature: key to read when the backbone returns a dict.
        hidden_dim: optional width of one hidden layer before the output.
        dropout: dropout rate before each dense layer.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> tuple(pl.heads.Regressor()({"pooled_output": np.zeros((2, 16), "float32")}).shape)
        (2,)
        >>> tuple(pl.heads.Regressor(outputs=3)(np.zeros((2, 16), "float32")).shape)
        (2, 3)
    """

    task = "regression"
    output_name = "values"

    def __init__(self, outputs: int = 1, feature: str = "pooled_output",
                 hidden_dim: int | None = None, dropout: float = 0.1, **kwargs):
        validation.positive_int("outputs", outputs)
        super().__init__(outputs, feature=feature, hidden_dim=hidden_dim, dropout=dropout,
                         **kwargs)
        self.outputs = outputs

    def call(self, features, training=None):
        values = super().call(features, training=training)
        return values[:, 0] if self.outputs == 1 else values

    def compute_output_shape(self, input_shape):
        shape = super().compute_output_shape(input_shape)
        return shape[:-1] if self.outputs == 1 else shape

    def default_loss(self):
        return PerExampleSquaredError()

    def default_metrics(self) -> list:
        return [keras.metrics.MeanAbsoluteError(name="mae"),
                keras.metrics.RootMeanSquaredError(name="rmse")]

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs}


@keras.saving.register_keras_serializable(package="pretrainlib")
class PerExampleSquaredError(keras.losses.MeanSquaredError):
    """Mean squared error that also treats `[batch]` targets one example at a time.

    Keras's `MeanSquaredError` averages over the last axis, so `[batch]` targets
    become one scalar per batch, and Keras's reduction passes a scalar through
    without dividing it by the number of replicas: under a distribution strategy
    with N replicas the gradient came out N times too large. Here `[batch]` values
    are read as `[batch, 1]`.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.heads.regressor import PerExampleSquaredError
        >>> float(PerExampleSquaredError()(np.array([0.0, 2.0]), np.array([1.0, 0.0])))
        2.5
    """

    def __init__(self, name: str = "mean_squared_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        if len(y_pred.shape) == 1:
            y_true, y_pred = y_true[:, None], y_pred[:, None]
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}
