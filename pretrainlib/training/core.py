"""The training core: compile defaults, run-length-aware schedules, dataset checks.

`Pretrainer` and `FineTuner` inherit `TrainingCore` before `keras.Model`, so every
Keras feature (callbacks, distribution strategies, saving) stays Keras's own; this
mixin only fills in defaults that work and checks inputs before any step runs.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import (  # Keras's own test, kept in step
    _collective_all_reduce_multi_worker as _multi_worker,
)
from keras.src.losses.loss import unscale_loss_for_distribution  # as Keras's step

from pretrainlib import validation
from pretrainlib.training import checkpoint as checkpointing
from pretrainlib.training import precision as precision_module
from pretrainlib.training import summary
from pretrainlib.training.optimizers import SGD, AdamW, inner_optimizer
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

    Examples:
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
        skip_nonfinite: bool = False,
        precision: str | None = None,
        **kwargs,
    ):
        """Like `keras.Model.compile`, with defaults that work for this model.

        A string `optimizer` ("adamw" or "sgd") gets a warmup + linear-decay schedule
        peaking at `learning_rate`, gradient clipping at `clipnorm` and decoupled
        weight decay; the run length is read from the dataset at `fit`. Pass a Keras
        optimizer instance to take full control. `loss` and metrics default to
        what the objective or head declares.

        By default `fit` stops at the first batch whose loss is NaN or infinite.
        `skip_nonfinite=True` skips such a batch instead: no weight, optimizer slot
        or BatchNorm statistic changes, it is left out of the reported loss, and
        `fit` stops only after 10 skipped batches in a row.

        `precision` sets the whole model's dtype policy: `"mixed_bfloat16"` (TPU, or
        CPUs with bfloat16 units), `"mixed_float16"` (GPU; Keras adds loss scaling),
        `"float32"`, or `"auto"` (by hardware, see `pl.training.precision.resolve`).
        Variables stay float32 either way. None leaves the layers' policies as built.
        """
        # Remembered so that `keras.saving.load_model` compiles the model the same way.
        self._compile_arguments = json.dumps(keras.saving.serialize_keras_object({
            "optimizer": optimizer, "learning_rate": learning_rate,
            "weight_decay": weight_decay, "warmup_ratio": warmup_ratio, "clipnorm": clipnorm,
            "loss": loss, "metrics": metrics, "weighted_metrics": weighted_metrics,
            "skip_nonfinite": skip_nonfinite, "precision": precision, **kwargs,
        }))
        self.skip_nonfinite = bool(skip_nonfinite)
        if precision is not None:  # a bad name fails here, before anything changes
            precision = precision_module.resolve(precision)
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
        if precision is not None:
            precision_module.apply(self, precision)  # before Keras picks loss scaling
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

    def train_step(self, data):
        """Keras's step; with `skip_nonfinite`, a batch with a non-finite loss or
        gradient changes nothing.

        Written out (after keras/src/backend/tensorflow/trainer.py) because skipping
        inside the optimizer, as LossScaleOptimizer does, would still let the forward
        pass move BatchNorm statistics to NaN and count the batch in the loss.
        """
        if not getattr(self, "skip_nonfinite", False):
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        state = list(self.non_trainable_variables)
        saved = [tf.identity(v.value) for v in state]
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                      training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_weights
        gradients = tape.gradient(scaled, variables)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                                for g in [loss, *gradients] if g is not None])

        def apply():
            self.optimizer.apply_gradients(zip(gradients, variables))
            return tf.constant(0.0)

        def skip():
            for variable, value in zip(state, saved):
                variable.assign(value)
            return tf.constant(1.0)

        skipped = tf.cond(finite, apply, skip)
        batch = tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0]
        self._loss_tracker.update_state(
            tf.where(finite, unscale_loss_for_distribution(loss), 0.0),
            sample_weight=tf.where(finite, batch, 0))
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return {**logs, "skipped": skipped}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, Keras's TF trainer builds metrics from a batch it reads
        # off a first iterator and then discards. That extra pass advances every
        # per-pass draw upstream (`shuffle`, packing order), so the run would train
        # on other batches than the same run on one device. The data's specs are
        # all the symbolic build needs.
        if iterator is not None and data_batch is None:
            adapter = getattr(iterator, "data_adapter", None)
            spec = getattr(adapter.get_tf_dataset(), "element_spec", None) if adapter else None
            if spec is not None:
                iterator, data_batch = None, spec
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _make_function(self, step_function):
        # Keras's TF trainer reduces a multi-worker step's logs with
        # `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars
        # (keras-team/keras#20585). Give each replica's logs that axis: the reduce
        # then averages them over all replicas of all workers.
        if _multi_worker(self.distribute_strategy):
            step = step_function

            def step_function(data):
                return tf.nest.map_structure(lambda v: tf.expand_dims(v, 0), step(data))

        return super()._make_function(step_function)

    def summary(self, print_fn=None, layers: bool = False, **kwargs) -> None:
        """What this model is and what trains in it, in a few lines; `layers=True` (or
        any argument of `keras.Model.summary`, e.g. `expand_nested=True`) adds Keras's
        layer table."""
        summary.render(f'{type(self).__name__} "{self.name}"', self._summary_rows(),
                       print_fn)
        if layers or kwargs:
            super().summary(print_fn=print_fn, **kwargs)

    def _summary_rows(self) -> list[tuple[str, str]]:
        """`(label, text)` rows for `summary()`; subclasses put theirs first."""
        total = summary.count_params(self.weights)
        trainable = summary.count_params(self.trainable_weights)
        return [("trainable", f"{summary.human(trainable)} of {summary.human(total)} "
                              f"parameters ({100 * trainable / max(total, 1):.1f}%)")]

    def optimizer_variables(self) -> list:
        """The variables the optimizer keeps state for (all trainable ones here)."""
        return self.trainable_variables

    def default_loss(self):
        raise NotImplementedError

    def default_metrics(self) -> list:
        return []

    def default_weighted_metrics(self) -> list:
        return []

    def _require_compiled(self) -> None:
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("Call `compile()` before `fit()`.")

    def _schedule(self) -> WarmupLinearDecay | None:
        schedule = getattr(inner_optimizer(self.optimizer), "_learning_rate", None)
        return schedule if isinstance(schedule, WarmupLinearDecay) else None

    def _fit_keras(self, x, epochs: int = 1, callbacks=None, steps_per_epoch: int | None = None,
                   initial_epoch: int = 0, on_start=None, counted=None, view=None,
                   **kwargs):
        """`keras.Model.fit` with the NaN guard and, given a `pl.training.Checkpoint`
        in `callbacks`, exact resumption from its newest checkpoint.

        With a checkpoint the data is read as one stream, `x.repeat()`, `steps`
        batches an epoch, so the position of any batch is known: a resumed run skips
        the batches already trained on and finishes the interrupted epoch before
        going on (two Keras `fit` calls; their histories are merged). `on_start(epoch)`
        runs once the state is final (the FineTuner applies its policy there).

        A `WarmupLinearDecay` schedule learns this call's length here: epochs x
        batches per epoch, counted once on `counted` (default `x`; the Pretrainer
        passes the raw data, cheaper to count than its masked view).

        `view(stream, first)` maps the one stream before Keras reads it, `first`
        being the index of its first batch (optimizer step at the run's start plus
        the batches skipped): the Pretrainer's objective
        transform, whose random draws then depend only on each batch's position in
        the run (not on how many iterators tf.data or a strategy made), so reruns,
        resumed runs and N replicas all see the same masks.
        """
        callbacks = list(callbacks or [])
        saver = checkpointing.find(callbacks)
        callbacks.insert(0, checkpointing.NonFiniteLossGuard(  # before any save
            saver, skip=getattr(self, "skip_nonfinite", False)))
        schedule = self._schedule()
        if schedule is not None or saver is not None or view is not None:
            steps = batches_per_epoch(x if counted is None else counted, steps_per_epoch)
        if saver is not None or view is not None:  # one endless stream
            every = int(getattr(self, "steps_per_execution", 1) or 1)
            if steps % every:
                # Keras runs whole executions; on this endless stream the last one of each
                # epoch would train on the next epoch's first batches.
                divisors = [d for d in range(1, steps + 1) if steps % d == 0]
                raise ValueError(
                    f"`steps_per_execution` must divide the {steps} batches per epoch here "
                    f"(it is {every}); pick one of {divisors[-6:]}, or change the batch "
                    "size or `steps_per_epoch`.")
        if schedule is not None:
            schedule.start(int(self.optimizer.iterations.numpy()),
                           steps * max(1, epochs - initial_epoch))
        if saver is None and view is None:
            if on_start is not None:
                on_start(initial_epoch)
            return keras.Model.fit(self, x, epochs=epochs, callbacks=callbacks,
                                   steps_per_epoch=steps_per_epoch,
                                   initial_epoch=initial_epoch, **kwargs)
        run = {"first_epoch": initial_epoch, "steps_per_epoch": steps,
               "first_step": int(self.optimizer.iterations.numpy()),
               "schedule": schedule.get_config() if schedule is not None else None}
        offset, skip = 0, 0
        latest = saver.latest() if saver is not None and saver.resume else None
        if latest is not None:
            state = saver.restore(self, latest)
            if state["steps_per_epoch"] != steps:
                raise ValueError(
                    f"`x` yields {steps} batches per epoch, but the run checkpointed in "
                    f"{saver.directory} had {state['steps_per_epoch']}: resume with the "
                    "same data and batch size, or pass Checkpoint(..., resume=False).")
            run = {key: state[key] for key in run}
            if schedule is not None and run["schedule"] is not None:
                schedule.start(run["schedule"]["first_step"], run["schedule"]["total_steps"])
            initial_epoch, offset = state["epoch"], state["batch"]
            skip = (initial_epoch - run["first_epoch"]) * steps + offset
        if on_start is not None:
            on_start(initial_epoch)
        stream = x.repeat().skip(skip)
        if view is not None:
            stream = view(stream, run["first_step"] + skip)
        histories = []
        if offset and initial_epoch < epochs:  # finish the interrupted epoch first
            stream = _one_iterator(stream, self.distribute_strategy)
            saver.begin(run, offset)
            histories.append(keras.Model.fit(
                self, stream, epochs=initial_epoch + 1, callbacks=callbacks,
                steps_per_epoch=steps - offset, initial_epoch=initial_epoch, **kwargs))
            initial_epoch += 1
        if saver is not None:
            saver.begin(run)
        histories.append(keras.Model.fit(
            self, stream, epochs=epochs, callbacks=callbacks,
            steps_per_epoch=steps, initial_epoch=initial_epoch, **kwargs))
        return _merged(histories)


def _one_iterator(stream: tf.data.Dataset, strategy) -> tf.data.Dataset:
    """A dataset that reads on from one iterator of `stream`, however many Keras
    `fit` calls iterate it.

    Why: a shuffled dataset's order depends on how many iterators were made over it
    in this process (they share one seed generator), so the two `fit` calls of a
    resumed epoch must not each start their own. Multi-device strategies cannot
    distribute a dataset that reads an iterator; there the stream is used as is
    (batches are still skipped, but later epochs' order may differ from an
    uninterrupted run).
    """
    if strategy.num_replicas_in_sync > 1:
        return stream
    iterator = iter(stream)
    bridge = tf.data.Dataset.from_tensors(0).repeat().map(lambda _: iterator.get_next())
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False  # no read-ahead to lose
    return bridge.with_options(options)


def batches_per_epoch(dataset, steps_per_epoch: int | None) -> int:
    """`steps_per_epoch` if given, else the dataset's length (counted if unknown)."""
    if steps_per_epoch is not None:
        return validation.positive_int("steps_per_epoch", steps_per_epoch)
    steps = dataset_length("x", dataset)
    if steps is None:  # endless (an error) or unknown: count one pass
        steps = int(bounded("x", dataset, None, "steps_per_epoch")
                    .reduce(0, lambda n, _: n + 1))
    return steps


def bounded(name: str, dataset: tf.data.Dataset, steps: int | None,
            steps_name: str) -> tf.data.Dataset:
    """`dataset`, or its first `steps` batches if it repeats forever; an endless
    dataset without `steps` is an error naming `steps_name`."""
    if int(dataset.cardinality()) != tf.data.INFINITE_CARDINALITY:
        return dataset
    if steps is None:
        raise ValueError(f"`{name}` repeats forever: pass `{steps_name}` to say how many "
                         "of its batches to use.")
    return dataset.take(steps)


def _merged(histories: list):
    """One History from the Keras `fit` calls of a resumed run, epochs in order."""
    merged = histories[-1]
    for earlier in reversed(histories[:-1]):
        merged.epoch = earlier.epoch + merged.epoch
        for key, values in earlier.history.items():
            merged.history[key] = values + merged.history.get(key, [])
    return merged
