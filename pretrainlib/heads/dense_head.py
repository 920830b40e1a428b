"""What every dense task head shares: pick the backbone's features, pool, dense."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.protocol import DeclaresLoss


def select_feature(features, feature: str):
    """`features[feature]` when a backbone returns a dict, else `features` itself."""
    if isinstance(features, dict):
        if feature not in features:
            raise ValueError(
                f"The backbone returns {sorted(features)}, but the head reads "
                f"`feature={feature!r}`. Pass one of those as `feature`."
            )
        features = features[feature]
    return features


class DenseHead(DeclaresLoss, keras.layers.Layer):
    """Dropout and a dense layer (optionally an MLP) from features to `units` outputs.

    Takes a backbone's output: a tensor `[batch, features]` (a feature map
    `[batch, height, width, channels]` or a sequence `[batch, seq, features]` is
    averaged over positions first), or a dict from which it picks `feature`.
    Subclasses set `task`, what `units` is, and the loss and metrics a FineTuner
    compiles with by default (`default_loss()`, `default_metrics()`). Its dense layers share the
    head's dtype policy, so a quantized head saves and loads as it was.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.heads.dense_head import DenseHead
        >>> tuple(DenseHead(units=4)(np.zeros((2, 5, 16), "float32")).shape)
        (2, 4)
    """

    task = None
    output_name = "logits"  # the output Dense layer's name

    def __init__(self, units: int, feature: str = "pooled_output",
                 hidden_dim: int | None = None, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim is not None:
            validation.positive_int("hidden_dim", hidden_dim)
        validation.unit_interval("dropout", dropout)
        self.units = units
        self.feature = feature
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        # Sublayers take the head's policy: after `quantize`, `get_config` saves a
        # DTypePolicyMap of their quantized policies, which they read back here by
        # path (KerasHub's way for nested layers).
        dtype = self.dtype_policy
        self.dropout_layer = keras.layers.Dropout(dropout, name="dropout", dtype=dtype)
        self.hidden = (keras.layers.Dense(hidden_dim, activation="gelu", name="hidden",
                                          dtype=dtype) if hidden_dim else None)
        self.logits = keras.layers.Dense(units, name=self.output_name, dtype=dtype)

    def _select(self, features):
        return select_feature(features, self.feature)

    def _pool(self, x):
        # A feature map [batch, h, w, c] (e.g. a keras.applications model built
        # with include_top=False) is averaged over its spatial positions.
        return keras.ops.mean(x, axis=tuple(range(1, len(x.shape) - 1))) if len(x.shape) > 2 else x

    def build(self, input_shape):
        shape = self._pooled_shape(input_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = tuple(shape[:-1]) + (self.hidden_dim,)
        self.logits.build(shape)

    def call(self, features, training=None):
        x = self._pool(self._select(features))
        if self.hidden is not None:
            x = self.hidden(self.dropout_layer(x, training=training))
        return self.logits(self.dropout_layer(x, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(self._pooled_shape(input_shape)[:-1]) + (self.units,)

    def _pooled_shape(self, input_shape):
        shape = tuple(self._select(input_shape))
        return (shape[0], shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"feature": self.feature, "hidden_dim": self.hidden_dim,
                       "dropout": self.dropout})
        quantized = [layer for layer in (self.hidden, self.logits)
                     if layer is not None and layer.quantization_mode is not None]
        if quantized and not isinstance(self.dtype_policy, keras.dtype_policies.DTypePolicyMap):
            policies = keras.dtype_policies.DTypePolicyMap(default_policy=self.dtype_policy)
            for layer in quantized:
                policies[layer.path] = layer.dtype_policy
            config["dtype"] = keras.dtype_policies.serialize(policies)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)
