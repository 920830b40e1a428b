"""Pretrainer: a backbone plus an objective's head, trained on unlabeled data."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import formatting, randomness, validation
from pretrainlib.epochs import draw_seed
from pretrainlib.objectives.objective import Objective
from pretrainlib.training.core import TrainingCore
from pretrainlib.training.inputs import check_shapes, dataset_length


@keras.saving.register_keras_serializable(package="pretrainlib")
class Pretrainer(TrainingCore, keras.Model):
    """Trains `backbone` with a self-supervised `objective`; a Keras model.

    `fit`, `evaluate` and callbacks are Keras's. `fit` and `evaluate` take raw
    batches: a dataset (e.g. from `pl.data.text_dataset`) or arrays (images, with
    `y=` labels for objectives that use them). The objective's `transform`
    (masking, noise) is mapped over them inside tf.data. Its random draws come from
    `seed` and each batch's position in the run: anew for every batch of a run,
    the same on a rerun, a resumed run or N replicas; `evaluate` and validation
    draw from their own stream, the same on every call. After training, keep
    `pretrainer.backbone`; the objective's head is dropped.

    `compile()` defaults: AdamW (weight decay 0.01, per-variable bias correction),
    linear warmup over 10% of the run then linear decay, gradient clipping at norm
    1.0, peak learning rate 1e-3 (`default_learning_rate`), loss and metrics from
    the objective.

    Args:
        backbone: the model to pretrain (e.g. `pl.backbones.TextEncoder`).
        objective: a `pl.objectives.Objective` (e.g. `MaskedLM`).
        seed: base seed of the objective's draws (saved with the model and in
            checkpoints); default: drawn from Python's `random` (seeded by
            `keras.utils.set_random_seed`).
        preprocessor: raw inputs to the backbone's inputs, e.g.
            `pl.text.TextPreprocessor(tokenizer, sequence_length=128, pack=True)`:
            `fit` and `evaluate` then take raw texts; saved with the model.

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

    def __init__(self, backbone: keras.Model, objective: Objective, seed: int | None = None,
                 preprocessor=None, **kwargs):
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
        if seed is not None:
            validation.non_negative_int("seed", seed)
        objective.validate_backbone(backbone)
        if preprocessor is not None:
            preprocessor.check_backbone(backbone)
        inputs, outputs = objective.build(backbone)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.objective = objective
        self.seed = draw_seed() if seed is None else seed
        self.preprocessor = preprocessor

    # Masks and noise are drawn per batch of one stream (see `_stream_view`).
    _reads_one_stream = True

    @property
    def task_part(self):
        return self.objective

    def _summary_rows(self):
        return formatting.pretrainer_rows(self) + super()._summary_rows()

    def train_step(self, data):
        logs = super().train_step(data)
        self.objective.after_train_step(self)
        return logs

    # === Data goes through the objective ===
    def _check_data(self, name, dataset, steps, steps_name):
        dataset_length(name, dataset)
        spec = dataset.element_spec
        check_shapes(name, spec[0] if isinstance(spec, tuple) else spec, self.backbone)

    def _stream_view(self, stream, first_batch, step=1):
        return self._objective_view(stream, self.seed, first_batch, step)

    def _evaluation_view(self, dataset):
        # Its own stream, restarting at 0: every evaluation scores the same draws.
        if dataset is None:
            return None
        return self._objective_view(dataset, self.seed, 0, step=-1)

    def _objective_view(self, dataset, base: int, first: int = 0, step: int = 1):
        """`dataset` through the objective's `transform`, batch i drawing its random
        numbers (masks, noise) from the seed (base, first + step * i): see
        pretrainlib/randomness.py for why not plain tf.random ops. `fit` views one
        stream of all its epochs (step 1), so every batch of a run gets its own
        draws; evaluation counts down from -1, apart from every training batch."""
        seeds = tf.data.Dataset.counter(start=first if step > 0 else -1, step=step).map(
            lambda i: tf.stack([tf.constant(base, "int64"), i]))
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

    # === Config ===
    def get_config(self):
        # Not chained to super(): a functional model's config is its graph, which
        # our constructor rebuilds from the backbone and the objective (as in KerasHub).
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "objective": keras.saving.serialize_keras_object(self.objective),
            "seed": self.seed,
            "preprocessor": (None if self.preprocessor is None
                             else keras.saving.serialize_keras_object(self.preprocessor)),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["objective"] = keras.saving.deserialize_keras_object(config["objective"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = keras.saving.deserialize_keras_object(
                config["preprocessor"])
        return cls(**config)
