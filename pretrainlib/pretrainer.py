"""Pretrainer: a backbone plus an objective's head, trained on unlabeled data."""

from __future__ import annotations

import random

import keras
import tensorflow as tf

from pretrainlib.objectives import randomness
from pretrainlib.objectives.objective import Objective
from pretrainlib.training import summary
from pretrainlib.training.core import TrainingCore, dataset_length


@keras.saving.register_keras_serializable(package="pretrainlib")
class Pretrainer(TrainingCore, keras.Model):
    """Trains `backbone` with a self-supervised `objective`; a Keras model.

    `fit`, `evaluate` and callbacks are Keras's. Datasets passed to `fit` and
    `evaluate` yield raw batches (e.g. from `pl.data.text_dataset`); the objective's
    `transform` (masking, noise) is mapped over them inside tf.data, drawn anew for
    every batch of a run and the same on a rerun, a resumed run or N replicas. After
    training, keep `pretrainer.backbone`; the objective's head is dropped.

    `compile()` defaults: AdamW (weight decay 0.01, per-variable bias correction),
    linear warmup over 10% of the run then linear decay, gradient clipping at norm
    1.0, peak learning rate 1e-3 (`default_learning_rate`), loss and metrics from
    the objective.

    Args:
        backbone: the model to pretrain (e.g. `pl.backbones.TextEncoder`).
        objective: a `pl.objectives.Objective` (e.g. `MaskedLM`).

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog", "a large cat", "the dog barks at the cat"] * 20
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=60)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=16)
        >>> pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tok))
        >>> pre.compile(learning_rate=1e-3)
        >>> ds = pl.data.text_dataset(texts, tok, batch_size=8, sequence_length=16, pack=True)
        >>> history = pre.fit(ds, epochs=2, verbose=0)
        >>> pre.backbone is encoder
        True
    """

    def __init__(self, backbone: keras.Model, objective: Objective, **kwargs):
        if not isinstance(backbone, keras.Model):
            raise TypeError(
                "`backbone` must be a keras.Model (e.g. pl.backbones.TextEncoder). "
                f"Received: backbone of type {type(backbone).__name__}"
            )
        if not isinstance(objective, Objective):
            raise TypeError(
                "`objective` must be a pl.objectives.Objective (e.g. MaskedLM). "
                f"Received: objective of type {type(objective).__name__}"
            )
        objective.validate_backbone(backbone)
        inputs, outputs = objective.build(backbone)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.objective = objective

    # === Defaults from the objective ===
    def default_loss(self):
        return self.objective.loss()

    def default_metrics(self):
        return self.objective.metrics()

    def default_weighted_metrics(self):
        return self.objective.weighted_metrics()

    def _summary_rows(self):
        own = summary.count_params(self.backbone.weights)
        return [
            ("backbone", summary.backbone_line(self.backbone)),
            ("objective", f"{summary.describe(self.objective)}: head "
                          f"{summary.human(summary.count_params(self.weights) - own)} params"),
            *super()._summary_rows(),
        ]

    # === Data goes through the objective ===
    def _objective_view(self, name: str, dataset, first: int = 0):
        """`dataset` through the objective's `transform`, batch i drawing its random
        numbers (masks, noise) from the seed (base, first + i): see
        objectives/randomness.py for why not plain tf.random ops. `fit` views one
        stream of all its epochs, so every batch of a run gets its own draws;
        `evaluate` and validation data restart at 0, so they score the same masks
        every time."""
        dataset_length(name, dataset)
        base = random.getrandbits(31)
        seeds = tf.data.Dataset.counter(start=first).map(lambda i: tf.stack([base, i]))

        batch_size = tf.nest.flatten(dataset.element_spec)[0].shape[:1]

        def transform(batch, seed):
            with randomness.batch_seed(seed):
                out = self.objective.transform(batch)
            # Keep a static batch size static: a distribution strategy then splits each
            # transformed global batch between the replicas. With it unknown, tf.data
            # rewrites the upstream `batch` to the per-replica size instead, and every
            # replica would mask its rows with the same draws.
            for tensor in tf.nest.flatten(out):
                tensor.set_shape(batch_size.concatenate(tensor.shape[1:]))
            return out

        return tf.data.Dataset.zip(dataset, seeds).map(
            transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def fit(self, x=None, y=None, epochs=1, validation_data=None, steps_per_epoch=None,
            initial_epoch=0, **kwargs):
        if y is not None:
            raise ValueError(
                "Pretrainer.fit takes unlabeled data: pass a dataset as `x` and no `y`; "
                "the objective makes the targets."
            )
        self._require_compiled()
        if validation_data is not None:
            validation_data = self._objective_view("validation_data", validation_data)
        kwargs.setdefault("shuffle", False)  # datasets shuffle themselves
        if self.built and not self.optimizer.built:  # so that a checkpoint can load
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimizer_variables())
        dataset_length("x", x)
        return self._fit_keras(x, epochs=epochs, validation_data=validation_data,
                               steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                               view=lambda stream, first: self._objective_view(
                                   "x", stream, first), **kwargs)

    def evaluate(self, x=None, y=None, **kwargs):
        return super().evaluate(self._objective_view("x", x), **kwargs)

    # === Config ===
    def get_config(self):
        # Not chained to super(): a functional model's config is its graph, which
        # our constructor rebuilds from the backbone and the objective (as in KerasHub).
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "objective": keras.saving.serialize_keras_object(self.objective),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["objective"] = keras.saving.deserialize_keras_object(config["objective"])
        return cls(**config)
