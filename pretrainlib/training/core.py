"""The training core: compile defaults, run-length-aware schedules, dataset checks.

`Pretrainer` and `FineTuner` inherit `TrainingCore` before `keras.Model`, so every
Keras feature (callbacks, distribution strategies, saving) stays Keras's own; this
mixin only fills in defaults that work and checks inputs before any step runs.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.training.optimizers import SGD, AdamW
from pretrainlib.training.schedules import WarmupLinearDecay

_OPTIMIZERS = {"adamw": AdamW, "sgd": SGD}


def make_optimizer(
    optimizer: str = "adamw",
    learning_rate: float = 1e-3,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.1,
    clipnorm: float | None = 1.0,
) -> keras.optimizers.Optimizer:
    """Builds the default optimizer: warmup + linear decay, clipping, weight decay."""
    validation.one_of("optimizer", optimizer, _OPTIMIZERS)
    validation.positive_float("learning_rate", learning_rate)
    validation.unit_interval("warmup_ratio", warmup_ratio)
    if clipnorm is not None:
        validation.positive_float("clipnorm", clipnorm)
    schedule = WarmupLinearDecay(learning_rate, warmup_ratio=warmup_ratio)
    if optimizer == "adamw":
        return AdamW(learning_rate=schedule, weight_decay=weight_decay, clipnorm=clipnorm)
    return SGD(learning_rate=schedule, momentum=0.9, clipnorm=clipnorm)


def dataset_length(name: str, dataset) -> int | None:
    """Batches per epoch of `dataset`, or None if unknown; rejects empty datasets."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`{name}` must be a tf.data.Dataset (see pl.data.text_dataset). "
            f"Received: {name} of type {type(dataset).__name__}"
        )
    cardinality = int(dataset.cardinality())
    if cardinality == 0:
        raise ValueError(f"`{name}` is an empty dataset; it yields no batch.")
    if cardinality > 0:
        return cardinality
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None
    for _ in dataset.take(1):
        return None
    raise ValueError(f"`{name}` is an empty dataset; it yields no batch.")


class TrainingCore:
    """Mixin for `keras.Model` subclasses: default compile and run-aware schedules.

    Put it before `keras.Model` in the bases and implement `default_loss()`.

    Example:
    >>> import keras, pretrainlib as pl
    >>> class Regressor(pl.training.TrainingCore, keras.Model):
    ...     def default_loss(self):
    ...         return "mse"
    >>> inputs = keras.Input((3,))
    >>> model = Regressor(inputs, keras.layers.Dense(1)(inputs))
    >>> model.compile(learning_rate=1e-2)
    >>> type(model.optimizer).__name__
    'AdamW'
    """

    default_learning_rate = 1e-3

    def compile(
        self,
        optimizer="adamw",
        learning_rate: float | None = None,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        clipnorm: float | None = 1.0,
        loss=None,
        metrics=None,
        weighted_metrics=None,
        **kwargs,
    ):
        """Like `keras.Model.compile`, with defaults that work for this model.

        A string `optimizer` ("adamw" or "sgd") gets a warmup + linear-decay schedule
        peaking at `learning_rate`, gradient clipping at `clipnorm` and decoupled
        weight decay; the run length is read from the dataset at `fit`. Pass a Keras
        optimizer instance to take full control. `loss` and metrics default to
        what the objective or head declares.
        """
        # Remembered so that `keras.saving.load_model` compiles the model the same way.
        self._compile_arguments = json.dumps(keras.saving.serialize_keras_object({
            "optimizer": optimizer, "learning_rate": learning_rate,
            "weight_decay": weight_decay, "warmup_ratio": warmup_ratio, "clipnorm": clipnorm,
            "loss": loss, "metrics": metrics, "weighted_metrics": weighted_metrics, **kwargs,
        }))
        if isinstance(optimizer, str):
            optimizer = make_optimizer(
                optimizer.lower(),
                learning_rate=learning_rate or self.default_learning_rate,
                weight_decay=weight_decay,
                warmup_ratio=warmup_ratio,
                clipnorm=clipnorm,
            )
        elif learning_rate is not None:
            raise ValueError(
                "`learning_rate` is only used with a string `optimizer`; set it on the "
                f"optimizer instance instead. Received: learning_rate={learning_rate}"
            )
        super().compile(
            optimizer=optimizer,
            loss=loss if loss is not None else self.default_loss(),
            metrics=metrics if metrics is not None else self.default_metrics(),
            weighted_metrics=(
                weighted_metrics if weighted_metrics is not None
                else self.default_weighted_metrics()
            ),
            **kwargs,
        )

    def get_compile_config(self) -> dict:
        arguments = getattr(self, "_compile_arguments", None)
        return {"pretrainlib": json.loads(arguments)} if arguments else {}

    def compile_from_config(self, config: dict) -> None:
        """Compiles as the saved model was (called by `keras.saving.load_model`), and
        builds the optimizer on the variables it had, so its state can load."""
        arguments = config.get("pretrainlib")
        if arguments is None:
            return
        self.compile(**{k: keras.saving.deserialize_keras_object(v)
                        for k, v in arguments.items()})
        if self.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimizer_variables())

    def optimizer_variables(self) -> list:
        """The variables the optimizer keeps state for (all trainable ones here)."""
        return self.trainable_variables

    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self) -> list:
        return []

    def default_weighted_metrics(self) -> list:
        return []

    def _start_schedule(self, dataset, epochs: int, steps_per_epoch: int | None,
                        initial_epoch: int = 0) -> None:
        """Tells a `WarmupLinearDecay` schedule how long this `fit` call runs."""
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        schedule = getattr(self.optimizer, "_learning_rate", None)
        if not isinstance(schedule, WarmupLinearDecay):
            return
        steps = steps_per_epoch or dataset_length("x", dataset)
        if steps is None:  # unknown length: count one pass (cheap next to training)
            steps = int(dataset.reduce(0, lambda n, _: n + 1))
        schedule.start(int(self.optimizer.iterations.numpy()),
                       steps * max(1, epochs - initial_epoch))
        # Schedule constants are baked into the traced step: retrace for this run.
        self.train_function = None
