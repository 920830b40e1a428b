"""The task base shared by `Pretrainer` and `FineTuner`: Keras's API, sane defaults.

Both inherit `TrainingCore` before `keras.Model`, so every Keras feature (callbacks,
distribution strategies, saving) stays Keras's own. This class fills in defaults
that work (`compile`), accepts what `keras.Model` accepts (`fit`, `evaluate`,
`predict`) and checks it before any step runs; the parts live beside it:
`defaults` (the optimizer), `inputs` (arrays to tf.data, shape checks), `run` (one
`fit` call, resumable), `train_step` (skipping bad batches).
"""

from __future__ import annotations

import json

from pretrainlib import formatting, keras_compat
from pretrainlib.training import precision as precision_module
from pretrainlib.training import defaults
from pretrainlib.training.defaults import make_optimizer
from pretrainlib.training.inputs import as_dataset, fit_datasets
from pretrainlib.training.optimizers import inner_optimizer
from pretrainlib.training.run import Run
from pretrainlib.training.schedules import WarmupLinearDecay
from pretrainlib.training.train_step import skipping_train_step



class TrainingCore(keras_compat.TrainerOverrides):
    """Mixin for `keras.Model` subclasses: Keras's API with defaults that work.

    Put it before `keras.Model` in the bases and declare the defaults: give the
    model a `task_part` (a `pl.protocol.DeclaresLoss`, as objectives and heads
    are) or override `default_loss()`.

    Examples:
        >>> import keras, pretrainlib as pl
        >>> class Regressor(pl.training.TrainingCore, keras.Model):
        ...     def default_loss(self):
        ...         return "mse"
        >>> inputs = keras.Input((3,))
        >>> model = Regressor(inputs, keras.layers.Dense(1)(inputs))
        >>> model.compile("adam", learning_rate=1e-2)
        >>> type(model.optimizer).__name__
        'Adam'
    """

    default_learning_rate = 1e-3
    epochs_trained = 0  # absolute epochs trained; a later `fit` continues from here
    _reads_one_stream = False  # True: every fit reads its data as one endless stream

    # === Compile ===
    def compile(self, optimizer="auto", loss="auto", loss_weights=None, metrics="auto",
                weighted_metrics="auto", run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True, *,
                learning_rate: float | None = None, weight_decay: float | None = None,
                warmup_ratio: float = 0.1, clipnorm: float | None = 1.0,
                skip_nonfinite: bool = False, precision: str | None = None):
        """`keras.Model.compile`, in its argument order, with defaults that work.

        `optimizer`: `"auto"` (AdamW) or any Keras optimizer string (`"adam"`,
        `"sgd"`, `"rmsprop"`, `"lion"`, `"adafactor"`, ...) builds that optimizer
        with a warmup + linear-decay schedule peaking at `learning_rate` (default
        `default_learning_rate`; 0.0 is a rate), gradient clipping at `clipnorm`
        and `weight_decay` (default 0.01 for AdamW; for others the optimizer's
        own); the run length is read from the data at `fit`. A Keras optimizer
        instance is used as it is. Either way freezing policies can scale each
        layer group's rate. `loss`, `metrics` and `weighted_metrics`: `"auto"` is
        what the objective or head declares; anything else is Keras's.

        By default `fit` stops at the first batch whose loss is NaN or infinite.
        `skip_nonfinite=True` skips such a batch instead: no weight, optimizer slot,
        BatchNorm statistic or metric changes, it is left out of the reported loss,
        and `fit` stops only after 10 skipped batches in a row.

        `precision` sets the whole model's dtype policy: `"mixed_bfloat16"` (TPU, or
        CPUs with bfloat16 units), `"mixed_float16"` (GPU; Keras adds loss scaling),
        `"float32"`, or `"auto"` (by hardware, see `pl.training.precision.resolve`).
        Variables stay float32 either way. None leaves the layers' policies as built.
        """
        arguments = dict(
            optimizer=optimizer, loss=loss, loss_weights=loss_weights, metrics=metrics,
            weighted_metrics=weighted_metrics, run_eagerly=run_eagerly,
            steps_per_execution=steps_per_execution, jit_compile=jit_compile,
            auto_scale_loss=auto_scale_loss, learning_rate=learning_rate,
            weight_decay=weight_decay, warmup_ratio=warmup_ratio, clipnorm=clipnorm,
            skip_nonfinite=skip_nonfinite, precision=precision)
        if precision is not None:  # a bad name fails here, before anything changes
            precision = precision_module.resolve(precision)
        optimizer = make_optimizer(optimizer, learning_rate, weight_decay, warmup_ratio,
                                   clipnorm, default_learning_rate=self.default_learning_rate)
        # Remembered so that `keras.saving.load_model` compiles the model the same way.
        self._compile_arguments = defaults.remember(arguments)
        self.skip_nonfinite = bool(skip_nonfinite)
        if precision is not None:
            precision_module.apply(self, precision)  # before Keras picks loss scaling
        super().compile(optimizer=optimizer, **defaults.keras_settings(self, arguments))

    def compile_settings(self) -> dict:
        """Fresh copies of what `compile` gave Keras besides the optimizer (loss,
        metrics, ...), for another model that trains part of this one."""
        return defaults.keras_settings(self, defaults.recall(self._compile_arguments))

    def get_compile_config(self) -> dict:
        arguments = getattr(self, "_compile_arguments", None)
        return {"pretrainlib": json.loads(arguments)} if arguments else {}

    def compile_from_config(self, config: dict) -> None:
        """Compiles as the saved model was (called by `keras.saving.load_model`), and
        builds the optimizer on the variables it had, so its state can load."""
        if config.get("pretrainlib") is None:
            return
        self.compile(**defaults.recall(json.dumps(config["pretrainlib"])))
        if self.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimizer_variables())

    def train_step(self, data):
        """Keras's step; with `skip_nonfinite`, a bad batch changes nothing
        (see `pl.training.train_step.skipping_train_step`)."""
        if not getattr(self, "skip_nonfinite", False):
            return super().train_step(data)
        return skipping_train_step(self, data)

    # === Defaults, from what the task part declares ===
    @property
    def task_part(self):
        """The objective or head that declares the default loss and metrics."""
        return None

    def default_loss(self):
        if self.task_part is None:
            raise NotImplementedError(f"{type(self).__name__} declares no default loss: "
                                      "pass `loss=` to compile.")
        return self.task_part.default_loss()

    def default_metrics(self) -> list:
        return self.task_part.default_metrics() if self.task_part is not None else []

    def default_weighted_metrics(self) -> list:
        return (self.task_part.default_weighted_metrics() if self.task_part is not None
                else [])

    # === Fit, evaluate, predict ===
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=None, steps_per_epoch=None, **kwargs):
        """`keras.Model.fit`: datasets, arrays, dicts of arrays, `y=`,
        `validation_split=`, callbacks; checked before the first step.

        A later `fit` continues the model's epochs (a freezing policy goes on to its
        next stage) unless `initial_epoch` is given, which places this call in a
        run of `epochs` epochs from the start, as Keras numbers them. Each call is
        one learning-rate cycle (warmup, then decay to 0 at its last step), started
        at the optimizer's current step; with `initial_epoch` the cycle spans the
        `epochs` epochs of that run. With a `pl.training.Checkpoint` among the
        callbacks, an interrupted run resumes at its next batch.

        Data from `pl.data` pipelines and arrays is read in one order per (seed,
        epoch) (see `pl.epochs`): a checkpoint, a resume or a distribution
        strategy changes nothing that is trained. Arrays are shuffled with a seed
        drawn from Python's `random` at each call (fixed by
        `keras.utils.set_random_seed`).
        """
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("Call `compile()` before `fit()`.")
        x, validation_data = fit_datasets(x, y, sample_weight, batch_size, shuffle,
                                          validation_split, validation_data,
                                          getattr(self, "preprocessor", None))
        self._check_data("x", x, steps_per_epoch, "steps_per_epoch")
        if validation_data is not None:
            self._check_data("validation_data", validation_data,
                             kwargs.get("validation_steps"), "validation_steps")
        # Build the optimizer on every variable some stage trains (Keras refuses
        # variables it does not know), under the model's strategy (slots are variables).
        if self.built and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimizer_variables())
        run = Run(self, x, epochs, initial_epoch, steps_per_epoch, callbacks)
        return self._fit_run(run, validation_data=validation_data, verbose=verbose,
                             class_weight=class_weight, shuffle=False, **kwargs)

    def _fit_run(self, run: Run, **kwargs):
        """Runs `run`; the FineTuner trains cached features here when it pays."""
        return run.fit(validation_data=self._evaluation_view(kwargs.pop("validation_data")),
                       **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, sample_weight=None, **kwargs):
        """`keras.Model.evaluate`, on the same inputs `fit` takes."""
        x = self._as_dataset("x", x, y, sample_weight, batch_size, shuffle=False)
        self._check_data("x", x, kwargs.get("steps"), "steps")
        return super().evaluate(self._evaluation_view(x), **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """`keras.Model.predict`, on arrays, datasets or raw inputs a preprocessor
        takes."""
        x = self._as_dataset("x", x, None, None, batch_size, shuffle=False)
        return super().predict(x, **kwargs)

    def _as_dataset(self, name, x, y=None, sample_weight=None, batch_size=None,
                    shuffle=True):
        return as_dataset(name, x, y, sample_weight, batch_size, shuffle,
                          getattr(self, "preprocessor", None))  # raw inputs it takes

    # === Hooks for subclasses ===
    def _check_data(self, name: str, dataset, steps: int | None, steps_name: str) -> None:
        """Rejects, before any step, data the model cannot take."""

    def _begin_run(self, epoch: int) -> None:
        """Called once a run's state is final, with the absolute epoch it starts in."""

    def _stream_view(self, stream, first_batch: int, step: int = 1):
        """The one stream a streamed run reads, given the number of its first batch
        and the step between the numbers of its batches (one input pipeline of
        `step`, when each worker reads its own share)."""
        return stream

    def _run_state(self):
        """What a checkpoint records of the model's own run state (JSON), if any."""
        return None

    def _restore_run_state(self, state) -> None:
        """Takes back what `_run_state` gave, from the checkpoint a run resumes."""

    def _evaluation_view(self, dataset):
        """What `evaluate` and validation read of `dataset`."""
        return dataset

    def optimizer_variables(self) -> list:
        """The variables the optimizer keeps state for (all trainable ones here)."""
        return self.trainable_variables

    def _schedule(self) -> WarmupLinearDecay | None:
        schedule = getattr(inner_optimizer(self.optimizer), "_learning_rate", None)
        return schedule if isinstance(schedule, WarmupLinearDecay) else None

    # === Summary ===
    def summary(self, print_fn=None, layers: bool = False, **kwargs) -> None:
        """What this model is and what trains in it, in a few lines; `layers=True` (or
        any argument of `keras.Model.summary`, e.g. `expand_nested=True`) adds Keras's
        layer table."""
        formatting.render(f'{type(self).__name__} "{self.name}"', self._summary_rows(),
                          print_fn)
        if layers or kwargs:
            super().summary(print_fn=print_fn, **kwargs)

    def _summary_rows(self) -> list[tuple[str, str]]:
        """`(label, text)` rows for `summary()`; subclasses put theirs first."""
        return formatting.trainable_rows(self)

