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
        return keras.losses.MeanSquaredError()

    def default_metrics(self) -> list:
        return [keras.metrics.MeanAbsoluteError(name="mae"),
                keras.metrics.RootMeanSquaredError(name="rmse")]

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs}
