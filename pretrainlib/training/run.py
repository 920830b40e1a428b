"""One `fit` call of a Pretrainer or FineTuner: its length, where it starts, its resume.

A `Run` turns Keras's `fit` arguments into the facts the rest of the library reads:
batches per epoch, the first optimizer step, the epoch the model is at (a second
`fit` continues where the first stopped, as Keras does), the learning-rate cycle
and, with a `pl.training.Checkpoint` in the callbacks, the position to resume from.
The model takes part through three hooks of `TrainingCore`: `_begin_run(epoch)`
once its state is final, `_reads_one_stream` and `_stream_view(stream, first)`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat, validation
from pretrainlib.epochs import source_of
from pretrainlib.training import checkpoint as checkpointing
from pretrainlib.training.inputs import batches_per_epoch


class Run:
    """The plan of one `fit` call; `Run(...).fit(**keras_fit_kwargs)` runs it.

    Epochs are numbered as Keras numbers them in this call (`initial_epoch` ..
    `epochs - 1`); the model's *absolute* epoch, which freezing policies follow, is
    `epoch_offset` plus that number. Without an explicit `initial_epoch`,
    `epoch_offset` is the number of epochs the model has trained (`fit(epochs=1)`
    twice trains epochs 0 and 1 of a policy); an explicit `initial_epoch` places
    the call in a run of `epochs` epochs from the start, as in Keras.

    Examples:
        >>> import numpy as np, tensorflow as tf, pretrainlib as pl
        >>> from pretrainlib.training.run import Run
        >>> ft = pl.FineTuner(pl.backbones.ConvNet(input_shape=(8, 8, 1), widths=(4,)),
        ...                   pl.heads.Classifier(2))
        >>> ft.compile()
        >>> data = tf.data.Dataset.from_tensor_slices(
        ...     (np.zeros((8, 8, 8, 1), "float32"), np.arange(8) % 2)).batch(4)
        >>> ft.epochs_trained = 3
        >>> list(Run(ft, data, epochs=2, initial_epoch=None, steps_per_epoch=None)
        ...      .absolute_epochs())
        [3, 4]
    """

    def __init__(self, model: keras.Model, x: tf.data.Dataset, epochs: int,
                 initial_epoch: int | None, steps_per_epoch: int | None, callbacks=None):
        self.model = model
        self.x = x
        self.epochs = validation.positive_int("epochs", epochs)
        self.explicit_start = initial_epoch is not None
        self.initial_epoch = (validation.non_negative_int("initial_epoch", initial_epoch)
                              if self.explicit_start else 0)
        self.epoch_offset = 0 if self.explicit_start else int(model.epochs_trained)
        self.steps_per_epoch = steps_per_epoch
        self.callbacks = list(callbacks or [])
        self.checkpoint = checkpointing.find(self.callbacks)
        self.schedule = model._schedule()
        self.steps = batches_per_epoch(x, steps_per_epoch)
        source = source_of(x)  # the `pl.epochs` source that built `x`, if any
        self.shards = _shards(model.distribute_strategy, source)
        if self.shards and steps_per_epoch is None:  # every worker's full batches
            self.steps = source.shard(0, self.shards).num_batches
        # Every run reads one stream of batches (Keras's iterator kept across epochs),
        # so that a checkpoint changes nothing but what is written. Keras runs whole
        # executions, which on one stream need `steps_per_execution` to divide the
        # epoch: a run that cannot checkpoint lets Keras iterate each epoch instead.
        required = self.checkpoint is not None or model._reads_one_stream
        self.streamed = required or _divides_epoch(model, self.steps)
        if required:
            _check_steps_per_execution(model, self.steps)

    def absolute_epochs(self) -> range:
        """The model's epochs this call trains (before any resume)."""
        return range(self.epoch_offset + self.initial_epoch, self.epoch_offset + self.epochs)

    def fit(self, trainer: keras.Model | None = None, **kwargs):
        """Runs Keras's `fit` (twice when resuming mid-epoch); returns one History.

        `trainer` is the Keras model that takes the steps, if not the model itself
        (the FineTuner's head on cached features): callbacks still see the model.
        """
        model, callbacks = self.model, list(self.callbacks)
        callbacks.insert(0, checkpointing.NonFiniteLossGuard(  # before any save
            self.checkpoint, skip=getattr(model, "skip_nonfinite", False)))
        callbacks.insert(0, _EpochCounter(self))
        first_step = int(model.optimizer.iterations.numpy())
        if self.schedule is not None:  # the cycle spans epochs 0 .. `epochs` of the call
            self.schedule.start(first_step - self.initial_epoch * self.steps,
                                self.steps * self.epochs)
        initial_epoch = self.initial_epoch

        def keras_fit(data, **arguments):
            arguments = {**kwargs, "epochs": self.epochs, **arguments}
            arguments["callbacks"] = callbacks
            if trainer is not None and trainer is not model:
                verbose = arguments.get("verbose", "auto")
                arguments["callbacks"] = keras.callbacks.CallbackList(
                    callbacks, add_history=True, add_progbar=verbose != 0,
                    verbose=1 if verbose == "auto" else verbose,
                    epochs=arguments["epochs"], steps=arguments.get("steps_per_epoch"),
                    model=model)
            keras.Model.fit(trainer or model, data, **arguments)
            return model.history  # the History the callbacks filled

        if not self.streamed:
            model._begin_run(self.epoch_offset + initial_epoch)
            return keras_fit(self.x, steps_per_epoch=self.steps_per_epoch,
                             initial_epoch=initial_epoch)
        source = source_of(self.x)  # `x` may have become cached features
        positional = getattr(source, "positional", False)  # resumed from a position
        resumed_at = None
        state = {"first_epoch": initial_epoch, "steps_per_epoch": self.steps,
                 "first_step": first_step, "epoch_offset": self.epoch_offset,
                 "seed": getattr(model, "seed", None),
                 "data_seed": source.seed if source is not None else None,
                 "schedule": self.schedule.get_config() if self.schedule else None,
                 "model": model._run_state()}
        offset, skip = 0, 0
        saver = self.checkpoint
        latest = saver.latest() if saver is not None and saver.resume else None
        if latest is not None:
            saved = saver.restore(model, latest)
            if saved["steps_per_epoch"] != self.steps:
                raise ValueError(
                    f"`x` yields {self.steps} batches per epoch, but the run checkpointed "
                    f"in {saver.directory} had {saved['steps_per_epoch']}: resume with the "
                    "same data and batch size, or pass Checkpoint(..., resume=False).")
            state = {key: saved.get(key, state[key]) for key in state}
            source = _resumed_source(source, state["data_seed"], saver)
            if state["seed"] is not None:
                model.seed = state["seed"]
            if self.schedule is not None and state["schedule"] is not None:
                self.schedule.start(state["schedule"]["first_step"],
                                    state["schedule"]["total_steps"])
            model._restore_run_state(state["model"])
            self.epoch_offset = state["epoch_offset"]
            initial_epoch, offset = saved["epoch"], saved["batch"]
            skip = (initial_epoch - state["first_epoch"]) * self.steps + offset
            resumed_at = saved.get("data_position")
        model.epochs_trained = self.epoch_offset + initial_epoch
        model._begin_run(self.epoch_offset + initial_epoch)
        first_epoch = self.epoch_offset + state["first_epoch"]

        def stream_from(batch: int) -> tf.data.Dataset:
            """The run's batches from `batch` (counted from the run's first) on."""
            if self.shards:  # each worker reads its own share, from its position
                specs = []

                def pipeline(context):
                    dataset = shard_stream(batch, context)
                    specs.append(dataset.element_spec)
                    return dataset

                distributed = model.distribute_strategy.distribute_datasets_from_function(
                    pipeline)
                distributed.per_worker_spec = specs[-1]  # for Keras's symbolic build
                return distributed
            if positional:  # from the position its batch `batch - 1` ended at
                position = resumed_at if batch == skip else source.position_after(batch)
                data = source.run_stream(position, first_epoch, batch)
            elif source is not None:  # built at its position: nothing read to get there
                epoch, within = divmod(batch, source.num_batches)
                data = source.stream(first_epoch + epoch, within)
            else:
                data = self.x.repeat().skip(batch)
            return model._stream_view(data, state["first_step"] + batch)

        def shard_stream(batch: int, context) -> tf.data.Dataset:
            """Worker `context.input_pipeline_id`'s share of the run from `batch` on;
            its batches numbered apart from every other worker's."""
            shard = source.shard(context.input_pipeline_id, context.num_input_pipelines)
            epoch, within = divmod(batch, shard.num_batches)
            return model._stream_view(
                shard.stream(first_epoch + epoch, within),
                (state["first_step"] + batch) * self.shards + context.input_pipeline_id,
                self.shards)

        stream = stream_from(skip)
        histories = []
        position = source.position_after if positional else None
        if offset and initial_epoch < self.epochs:  # finish the interrupted epoch first
            saver.begin(state, offset, position)
            bridged = source is None and model.distribute_strategy.num_replicas_in_sync == 1
            if bridged:
                stream = _one_iterator(stream)
            histories.append(keras_fit(stream, epochs=initial_epoch + 1,
                                       steps_per_epoch=self.steps - offset,
                                       initial_epoch=initial_epoch))
            if model.stop_training:  # a callback stopped the run (EarlyStopping, ...)
                return _merged(histories)
            # The rest is a second stream (built now: a positional one starts where
            # the epoch's last batch ended), or the same iterator read on.
            if not bridged:
                stream = stream_from(skip + self.steps - offset)
            initial_epoch += 1
        if saver is not None:
            saver.begin(state, position=position)
        histories.append(keras_fit(stream, steps_per_epoch=self.steps,
                                   initial_epoch=initial_epoch))
        return _merged(histories)


def _shards(strategy, source) -> int | None:
    """The number of workers that each read their own share of `source` (files, by
    chunk): under a multi-worker strategy with one replica per worker, a source
    that shards, and at least a chunk per worker. Otherwise None: every worker
    reads the whole stream and keeps its part of each batch (tf.data's data
    sharding)."""
    if source is None or not hasattr(source, "shard") or not keras_compat.is_multi_worker(
            strategy):
        return None
    workers = strategy.cluster_resolver.cluster_spec().num_tasks("worker")
    if (workers < 2 or strategy.num_replicas_in_sync != workers
            or len(source.chunks) < workers or source.batch_size % workers):
        return None
    return workers


def _resumed_source(source, saved_seed, saver):
    """`source` under the seed of the checkpointed run it resumes."""
    if source is None or saved_seed is None or saved_seed == source.seed:
        return source
    if source.explicit_seed:
        raise ValueError(
            f"`x` was built with seed={source.seed}, but the run checkpointed in "
            f"{saver.directory} read its data with seed={saved_seed}: resume with the "
            "same seed, or pass Checkpoint(..., resume=False).")
    return source.with_seed(saved_seed)  # a drawn seed: the checkpoint's draw


class _EpochCounter(keras.callbacks.Callback):
    """Keeps `model.epochs_trained` (the absolute epoch count) up to date."""

    def __init__(self, run: Run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch, logs=None):
        self.model.epochs_trained = self.run.epoch_offset + epoch + 1


def _steps_per_execution(model: keras.Model) -> int:
    return int(getattr(model, "steps_per_execution", 1) or 1)


def _divides_epoch(model: keras.Model, steps: int) -> bool:
    return steps % _steps_per_execution(model) == 0


def _check_steps_per_execution(model: keras.Model, steps: int) -> None:
    if not _divides_epoch(model, steps):
        # Keras runs whole executions; on one endless stream the last one of each
        # epoch would train on the next epoch's first batches.
        divisors = [d for d in range(1, steps + 1) if steps % d == 0]
        raise ValueError(
            f"`steps_per_execution` must divide the {steps} batches per epoch here (it is "
            f"{_steps_per_execution(model)}); pick one of {divisors[-6:]}, or change the batch size or "
            "`steps_per_epoch`.")


def _one_iterator(stream: tf.data.Dataset) -> tf.data.Dataset:
    """A dataset that reads on from one iterator of `stream`, however many Keras
    `fit` calls iterate it.

    Only for datasets that are not an `EpochSource` (those are rebuilt at any
    position). Why: a shuffled dataset's order depends on how many iterators were
    made over it in this process (they share one seed generator), so the two `fit`
    calls of a resumed epoch must not each start their own. Multi-device strategies
    cannot distribute a dataset that reads an iterator; there the rest of the run is
    a second stream that starts after the interrupted epoch (no batch is trained
    twice or skipped, but a shuffled order of later epochs may differ from an
    uninterrupted run's).
    """
    iterator = iter(stream)
    bridge = tf.data.Dataset.from_tensors(0).repeat().map(lambda _: iterator.get_next())
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False  # no read-ahead to lose
    return bridge.with_options(options)


def _merged(histories: list):
    """One History from the Keras `fit` calls of a resumed run, epochs in order."""
    merged = histories[-1]
    for earlier in reversed(histories[:-1]):
        merged.epoch = earlier.epoch + merged.epoch
        for key, values in earlier.history.items():
            merged.history[key] = values + merged.history.get(key, [])
    return merged
