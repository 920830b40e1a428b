"""Datasets whose every epoch is a function of (seed, epoch) alone.

A shuffled `tf.data` pipeline draws its order from a seed generator that every new
iterator advances, so the order a run trains on depends on how many iterators were
made over the dataset: by Keras (one per epoch, or one for a whole run), by a check
that reads the data first, by a resumed run. An `EpochSource` instead builds epoch
`e` from the key `(seed, e)`: its order (a stateless permutation), and every random
draw made for a batch (augmentation) from the key and the batch's position in the
epoch. The training core reads `stream(epoch, batch)`: the run's batches
from any position on, built directly, so that adding a checkpoint, resuming after
a kill, or splitting batches between replicas does not change what is trained,
and a resume starts at its batch without replaying the ones before it.

The pipelines of `pl.data` and the arrays given to `fit` are sources; a
`tf.data.Dataset` you build yourself is read as it is (`repeat()`, then `skip`
on resume), in the order its own seeds give.

Iterated directly (a loop of your own, `next(iter(ds))`), the dataset a source
returns draws a fresh key per pass, as a reshuffling dataset does.
"""

from __future__ import annotations

import random
import types
import weakref
from typing import Callable

import tensorflow as tf

from pretrainlib import randomness

__all__ = ["EpochSource", "Examples", "source_of"]

AUTOTUNE = tf.data.AUTOTUNE
_SOURCES: "weakref.WeakKeyDictionary[tf.data.Dataset, EpochSource]" = (
    weakref.WeakKeyDictionary())


def source_of(dataset) -> "EpochSource | None":
    """The `EpochSource` that built `dataset`, or None for any other dataset."""
    try:
        return _SOURCES.get(dataset)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def draw_seed() -> int:
    """A seed from Python's `random` (so `keras.utils.set_random_seed` fixes it)."""
    return random.getrandbits(31)


class EpochSource:
    """The batches of each epoch, built from the key `(seed, epoch)`.

    Args:
        batches: `batches(key, first_batch)` -> the finite `tf.data.Dataset` of the
            epoch keyed by `key` (int64 `[2]`), from its batch `first_batch` on.
            It must be a pure function of its arguments.
        num_batches: batches per epoch.
        seed: the seed; None draws one (see `draw_seed`), and a resumed run then
            takes the one its checkpoint recorded.
        draws: whether epochs draw random numbers beyond their order
            (augmentation): then features cannot be cached.

    Examples:
        >>> import tensorflow as tf
        >>> from pretrainlib.epochs import EpochSource
        >>> def batches(key, first):
        ...     order = tf.random.experimental.stateless_shuffle(tf.range(6), key)
        ...     return tf.data.Dataset.from_tensor_slices(order).batch(2).skip(first)
        >>> source = EpochSource(batches, num_batches=3, seed=0)
        >>> epoch_1 = [b.numpy().tolist() for b in source.epoch(1)]
        >>> resumed = [b.numpy().tolist() for b in source.stream(1, first_batch=1).take(2)]
        >>> resumed == epoch_1[1:]
        True
    """

    def __init__(self, batches: Callable[[tf.Tensor, tf.Tensor], tf.data.Dataset],
                 num_batches: int, seed: int | None = None, draws: bool = False):
        self._batches = batches
        self.num_batches = int(num_batches)
        self.explicit_seed = seed is not None
        self.seed = int(seed) if seed is not None else draw_seed()
        self.draws = bool(draws)

    def key(self, epoch) -> tf.Tensor:
        """The int64 `[2]` key of `epoch`."""
        return tf.stack([tf.constant(self.seed, "int64"), tf.cast(epoch, "int64")])

    def epoch(self, epoch: int, first_batch: int = 0) -> tf.data.Dataset:
        """Epoch `epoch`'s batches from `first_batch` on."""
        remaining = self.num_batches - int(first_batch)
        return self._batches(self.key(epoch), tf.constant(first_batch, "int64")).apply(
            tf.data.experimental.assert_cardinality(remaining))

    def stream(self, epoch: int = 0, first_batch: int = 0) -> tf.data.Dataset:
        """Every batch from epoch `epoch`, batch `first_batch` on, endlessly: the
        batches a run reads, built without reading the ones before."""
        later = tf.data.Dataset.counter(int(epoch) + 1).flat_map(
            lambda e: self._batches(self.key(e), tf.constant(0, "int64")))
        return self.epoch(epoch, first_batch).concatenate(later).prefetch(AUTOTUNE)

    def dataset(self) -> tf.data.Dataset:
        """The dataset to hand out: each pass draws a fresh key, as a reshuffling
        dataset does; the training core reads `stream` instead."""
        passes = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)
        ds = passes.take(1).flat_map(
            lambda draw: self._batches(tf.stack([draw, tf.constant(-1, "int64")]),
                                       tf.constant(0, "int64")))
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.num_batches))
        ds = ds.prefetch(AUTOTUNE)
        _SOURCES[ds] = self
        return ds

    def largest_label(self) -> int | None:
        """The largest class id among the labels, if known without a pass (None)."""
        return None

    def with_seed(self, seed: int) -> "EpochSource":
        """The same epochs under another seed."""
        other = _copy(self)
        other.seed, other.explicit_seed = int(seed), True
        return other


class Examples(EpochSource):
    """A source over in-memory examples: `columns` (a tuple of nests of tensors
    sharing their first axis), permuted per epoch when `shuffle`, batched, each
    batch passed through `prepare(batch)` (random draws inside it come from
    `pl.randomness` and the seed of the batch's place in the run).

    Batches are gathered from the columns in one step each (vectorized); the last
    step re-forms them with `batch`, so a distribution strategy splits each global
    batch, prepared as a whole, between its replicas as one device reads it.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.epochs import Examples
        >>> source = Examples((np.arange(5), np.arange(5) * 10), batch_size=2, seed=3)
        >>> [x.numpy().tolist() for x, _ in source.epoch(0)] == [
        ...     x.numpy().tolist() for x, _ in source.epoch(0)]
        True
        >>> sorted(int(v) for x, _ in source.epoch(1) for v in x)
        [0, 1, 2, 3, 4]
    """

    def __init__(self, columns: tuple, batch_size: int, shuffle: bool = True,
                 seed: int | None = None, prepare=None, draws: bool = False):
        self.columns = tuple(tf.nest.map_structure(tf.convert_to_tensor, column)
                             for column in columns)
        self.length = int(tf.shape(tf.nest.flatten(self.columns)[0])[0])
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.prepare = prepare
        super().__init__(self._epoch_batches, -(-self.length // self.batch_size), seed,
                         draws)

    def _gather(self, indices):
        picked = tuple(tf.nest.map_structure(lambda c: tf.gather(c, indices), column)
                       for column in self.columns)
        return picked if len(picked) > 1 else picked[0]

    def _epoch_batches(self, key, first_batch):
        order = tf.range(self.length, dtype="int64")
        if self.shuffle:
            order = tf.random.experimental.stateless_shuffle(order, key)
        return self._batches_of(order[first_batch * self.batch_size:], key, first_batch)

    def _batches_of(self, order, key, first_batch):
        """The examples `order` names, batched and prepared (see `prepared`)."""
        indices = tf.data.Dataset.from_tensor_slices(order).batch(self.batch_size)
        return prepared(indices, key, first_batch, self.batch_size, self.prepare,
                        build=self._gather)

    def largest_label(self) -> int | None:
        """The largest label of the second column (the labels), if there is one."""
        if len(self.columns) < 2 or not tf.nest.flatten(self.columns[1])[0].dtype.is_integer:
            return None
        return int(tf.reduce_max(tf.nest.flatten(self.columns[1])[0]))

    def ordered(self) -> tf.data.Dataset:
        """The examples in their given order, prepared, batched: one pass (no
        random draws may be involved, see `draws`)."""
        return self._batches_of(tf.range(self.length, dtype="int64"),
                                tf.constant([0, 0], "int64"), tf.constant(0, "int64"))

    def with_columns(self, columns: tuple) -> "Examples":
        """Other columns for the same examples, in the same epoch orders (same
        length, batch size, shuffling and seed), not prepared again."""
        other = Examples(columns, self.batch_size, self.shuffle, self.seed)
        other.explicit_seed = self.explicit_seed
        return other


def prepared(batches: tf.data.Dataset, key, first_batch, batch_size: int, prepare=None,
             build=None) -> tf.data.Dataset:
    """`batches` (numbered from `first_batch`), each made by `build` (if given) and
    passed through `prepare(batch)` under the batch seed fold_in(key, number), so
    random draws inside `prepare` (augmentation) come from `pl.randomness` and the
    batch's place in its epoch; re-formed with `batch` last, so a distribution
    strategy splits each prepared global batch between its replicas as one device
    reads it."""
    def one(batch, number):
        if build is not None:
            batch = build(batch)
        if prepare is None:
            return batch
        with randomness.batch_seed(tf.random.experimental.stateless_fold_in(key, number)):
            return prepare(batch)

    numbers = tf.data.Dataset.counter(first_batch)
    return (tf.data.Dataset.zip(batches, numbers).map(one, num_parallel_calls=AUTOTUNE)
            .unbatch().batch(batch_size))


def _copy(source: EpochSource) -> EpochSource:
    """A shallow copy; a `batches` that is a method of `source` becomes the copy's,
    so that what the copy changes (a shard's chunks, its batch size) is read."""
    other = object.__new__(type(source))
    other.__dict__.update(source.__dict__)
    batches = source._batches
    if getattr(batches, "__self__", None) is source:
        other._batches = types.MethodType(batches.__func__, other)
    return other
