"""The objective protocol: what a self-supervised (or supervised) task must say."""

from __future__ import annotations

from typing import Any

import keras

from pretrainlib.protocol import DeclaresLoss


class Objective(DeclaresLoss):
    """Base class for pretraining objectives. Subclass it to write your own.

    An objective has three jobs, each a method:

    1. `transform(batch)` turns a raw batch from the user's `tf.data.Dataset` into
       `(inputs, targets, sample_weights)`. The Pretrainer maps it over the dataset
       with `num_parallel_calls=AUTOTUNE`, so write it with vectorized TensorFlow ops.
       Draw random corruption (masking, noise) with `pl.objectives.randomness.uniform`
       / `.normal`: new draws every epoch, the same draws on a rerun or resume
       (plain `tf.random` ops in tf.data repeat each epoch once a seed is set).
    2. `build(backbone)` returns `(inputs, outputs)`: Keras symbolic tensors of the
       training model, built by calling the backbone on its own inputs and putting
       the objective's head on its outputs. The head exists only inside the
       Pretrainer: after pretraining the user keeps `pretrainer.backbone`.
    3. `loss()`, `metrics()` and `weighted_metrics()` say what `compile` uses by
       default.

    `validate_backbone(backbone)` runs at construction and should raise a
    `ValueError` when the backbone cannot serve this objective; it only checks
    (one objective may serve several backbones): read what `transform` needs
    from the batch, and what `build` needs from the backbone. Objectives are plain
    serializable objects: implement `get_config` and register the class with
    `keras.saving.register_keras_serializable`.

    The example is a toy objective that reconstructs a constant from pooled features.

    Examples:
        >>> import keras, pretrainlib as pl
        >>> class PooledAutoencoder(pl.objectives.Objective):
        ...     def transform(self, batch):
        ...         return batch, batch["token_ids"][:, :1] * 0.0, None
        ...     def build(self, backbone):
        ...         inputs = backbone.input
        ...         pooled = backbone(inputs)["pooled_output"]
        ...         return inputs, keras.layers.Dense(1)(pooled)
        ...     def loss(self):
        ...         return "mse"
        >>> encoder = pl.backbones.TextEncoder(vocab_size=50, num_layers=1, hidden_dim=16)
        >>> pre = pl.Pretrainer(encoder, PooledAutoencoder())
        >>> pre.output_shape
        (None, 1)
    """

    def validate_backbone(self, backbone: keras.Model) -> None:
        """Raises `ValueError` if `backbone` cannot be trained with this objective."""

    def transform(self, batch: Any):
        """Raw batch -> `(inputs, targets, sample_weights)`; runs inside tf.data."""
        raise NotImplementedError(f"{type(self).__name__} must implement `transform`.")

    def build(self, backbone: keras.Model):
        """Returns `(inputs, outputs)` of the training model around `backbone`."""
        raise NotImplementedError(f"{type(self).__name__} must implement `build`.")

    def after_train_step(self, model: keras.Model) -> None:
        """Runs inside every training step, after the optimizer's update (e.g. BYOL's
        moving-average target); `model` is the Pretrainer."""

    def loss(self):
        raise NotImplementedError(f"{type(self).__name__} must implement `loss`.")

    def metrics(self) -> list:
        return []

    def weighted_metrics(self) -> list:
        return []

    # The task-part protocol the Pretrainer reads (see pretrainlib/protocol.py).
    def default_loss(self):
        return self.loss()

    def default_metrics(self) -> list:
        return self.metrics()

    def default_weighted_metrics(self) -> list:
        return self.weighted_metrics()

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Objective":
        return cls(**config)
