"""The FineTuner's part of semi-supervised fine-tuning: `fit(..., unlabeled=...)`.

A mixin placed before `TrainingCore`: it checks the pool before any step, builds
it once the labeled batch size is known, joins each labeled batch with its
unlabeled block through the training core's `_stream_view` hook, records the
pool's seed in checkpoints (`_run_state`) and takes the semi-supervised step for
joined batches.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from pretrainlib.epochs import source_of
from pretrainlib.semi import pool as unlabeled_pool
from pretrainlib.semi import step as semi_step
from pretrainlib.semi.methods import PseudoLabel, SemiSupervised
from pretrainlib.training.core import TrainingCore
from pretrainlib.training.inputs import check_shapes


class LearnsFromPool:
    """Mixin for the FineTuner: an unlabeled pool read beside the labeled batches.

    Examples:
        >>> import pretrainlib as pl
        >>> from pretrainlib.semi.fitting import LearnsFromPool
        >>> issubclass(pl.FineTuner, LearnsFromPool)
        True
    """

    semi_supervised: SemiSupervised | None = None
    _unlabeled = None  # during a `fit`: its unlabeled inputs, then its pool

    @property
    def _reads_one_stream(self) -> bool:  # each batch meets its unlabeled block
        return self._unlabeled is not None

    @contextlib.contextmanager
    def _reading_pool(self, unlabeled, cache_features):
        """Inside: `fit` reads `unlabeled` too (checked here, before any step)."""
        self._unlabeled = self._unlabeled_inputs(unlabeled, cache_features)
        self.train_function = None  # traced with this call's pool and method
        try:
            yield
        finally:
            self._unlabeled = None
            self.train_function = None

    def _method(self) -> SemiSupervised:
        return self.semi_supervised if self.semi_supervised is not None else PseudoLabel()

    def _input_kind(self) -> str:
        if isinstance(self.input, dict) and "token_ids" in self.input:
            return "text"
        return "image" if len(self.input.shape) == 4 else "other"

    def _unlabeled_inputs(self, unlabeled, cache_features):
        """Checks `unlabeled` (before any step) and returns it as model inputs."""
        if getattr(self.task_part, "num_classes", None) is None:
            raise ValueError(
                "`unlabeled` needs one classification head (pseudo-labels are classes); "
                f"this FineTuner's head is {self.head!r}.")
        if getattr(self, "skip_nonfinite", False):
            raise ValueError("`unlabeled` with compile(skip_nonfinite=True) is not "
                             "supported: compile with skip_nonfinite=False.")
        if cache_features is True:
            raise ValueError("`cache_features=True` with `unlabeled`: every step runs the "
                             "backbone on unlabeled examples, so there is nothing to "
                             "cache. Pass cache_features='auto' or False.")
        kind = self._input_kind()
        method = self._method()
        method.views(kind, getattr(self.preprocessor, "tokenizer", None))  # checks
        teacher = method.teacher
        if teacher is not None and tuple(teacher.output_shape)[-1:] != tuple(
                self.output_shape)[-1:]:
            raise ValueError(
                f"The semi-supervised `teacher` {teacher.name!r} outputs shape "
                f"{teacher.output_shape}, but this FineTuner outputs "
                f"{self.output_shape}: the teacher must classify into the same classes.")
        inputs = unlabeled_pool.unlabeled_inputs("unlabeled", unlabeled, kind,
                                                 self.preprocessor)
        spec = (inputs.element_spec if hasattr(inputs, "element_spec") else
                tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), inputs))
        if not (kind == "image" and self.preprocessor is not None):  # it resizes
            check_shapes("unlabeled", spec, self.backbone)
        return inputs

    def _fit_with_pool(self, run, **kwargs):
        """A run that also reads the unlabeled pool (see `pl.semi`)."""
        method, kind = self._method(), self._input_kind()
        self._unlabeled = unlabeled_pool.pool_for(
            self._unlabeled, method, kind, self.preprocessor, _batch_size(run.x))
        with self.distribute_strategy.scope():
            self._semi = (method, semi_step.Trackers())
        run.callbacks.insert(1, semi_step.ResetTrackers(self._semi[1]))
        self.fit_on_cached_features = False
        return TrainingCore._fit_run(self, run, **kwargs)  # not the FineTuner's

    def _stream_view(self, stream, first_batch, step=1):
        if self._unlabeled is None:
            return stream
        ratio = self._semi[0].ratio
        return tf.data.Dataset.zip(stream, self._unlabeled.stream(first_batch, step)).map(
            lambda batch, views: semi_step.join(batch, views, ratio),
            num_parallel_calls=tf.data.AUTOTUNE)

    def _symbolic_batch(self, data_batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data_batch)
        if not semi_step.is_joined(x):
            return data_batch
        return (x[semi_step.LABELED], y, sample_weight)

    def _run_state(self):
        return None if self._unlabeled is None else {"unlabeled_seed": self._unlabeled.seed}

    def _restore_run_state(self, state) -> None:
        if self._unlabeled is not None and state and state.get("unlabeled_seed") is not None:
            self._unlabeled = self._unlabeled.with_seed(state["unlabeled_seed"])

    def train_step(self, data):
        x = keras.utils.unpack_x_y_sample_weight(data)[0]
        if semi_step.is_joined(x):
            return semi_step.train_step(self, data, *self._semi)
        return super().train_step(data)


def _batch_size(dataset) -> int:
    """The labeled batch size of `dataset`: its source's, its static one, or (for a
    dataset of your own without one) its first batch's."""
    source = source_of(dataset)
    if getattr(source, "batch_size", None):
        return int(source.batch_size)
    size = tf.nest.flatten(dataset.element_spec)[0].shape[0]
    if size is not None:
        return int(size)
    return int(tf.shape(tf.nest.flatten(next(iter(dataset)))[0])[0])
