"""Random draws for objectives' `transform`: new every epoch, the same on a rerun.

Why not `tf.random.uniform`: inside `Dataset.map`, a stateful random op restarts
its sequence with every new iterator once a global seed is set
(`keras.utils.set_random_seed`), and Keras makes a new iterator every epoch, so a
"dynamic" BERT mask or denoising noise would be drawn once and repeated each epoch.
The Pretrainer instead
pairs batch i of a run with the seed (base, i) and runs `transform` under
`batch_seed(seed)`; `uniform` and `normal` here then make stateless draws from it:
fresh for every batch of every epoch, identical on a rerun, a resumed run and under
a distribution strategy (the seed is a function of the batch's position alone, not
of how many iterators tf.data or Keras made), and independent of how tf.data
schedules parallel calls. Outside a Pretrainer (e.g. calling `transform` by hand)
they fall back to `tf.random`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import tensorflow as tf

from pretrainlib import keras_compat

_state = threading.local()


@contextlib.contextmanager
def batch_seed(seed: tf.Tensor):
    """Makes `uniform`/`normal` draw from `seed` (an int64 `[2]` tensor) inside."""
    previous = getattr(_state, "seed", None), getattr(_state, "calls", 0)
    _state.seed, _state.calls = tf.cast(seed, "int64"), 0
    try:
        yield
    finally:
        _state.seed, _state.calls = previous


def _next_seed() -> tf.Tensor | None:
    seed = getattr(_state, "seed", None)
    if seed is None:
        return None
    _state.calls += 1  # each call site of one traced transform gets its own stream
    return tf.random.experimental.stateless_fold_in(seed, _state.calls)


def uniform(shape, minval=0, maxval=None, dtype="float32") -> tf.Tensor:
    """Like `tf.random.uniform`, drawn from the current batch's seed.

    Examples:
        >>> import tensorflow as tf
        >>> from pretrainlib import randomness
        >>> with randomness.batch_seed(tf.constant([1, 2])):
        ...     a = randomness.uniform([3])
        >>> with randomness.batch_seed(tf.constant([1, 2])):
        ...     b = randomness.uniform([3])
        >>> bool(tf.reduce_all(a == b))
        True
    """
    seed = _next_seed()
    if seed is None:
        return tf.random.uniform(shape, minval, maxval, dtype=dtype)
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)


def normal(shape, stddev=1.0, dtype="float32") -> tf.Tensor:
    """Like `tf.random.normal(shape, stddev=...)`, drawn from the batch's seed."""
    seed = _next_seed()
    if seed is None:
        return tf.random.normal(shape, stddev=stddev, dtype=dtype)
    return tf.random.stateless_normal(shape, seed, stddev=stddev, dtype=dtype)


@contextlib.contextmanager
def layers_seeded(layers: list) -> Iterator[None]:
    """Inside `batch_seed(...)`, makes Keras random layers (augmentation such as
    `keras.layers.RandomFlip`) draw from the current seed too, so their transforms
    are a function of the seed alone.

    Examples:
        >>> import keras, tensorflow as tf
        >>> from pretrainlib import randomness
        >>> flip = keras.layers.RandomTranslation(0.3, 0.3)
        >>> image = tf.reshape(tf.range(16, dtype="float32"), [1, 4, 4, 1])
        >>> def draw(seed):
        ...     with randomness.batch_seed(tf.constant([seed, 0])):
        ...         with randomness.layers_seeded([flip]):
        ...             return flip(image, training=True)
        >>> bool(tf.reduce_all(draw(3) == draw(3)))
        True
    """
    def next_seed():
        seed = _next_seed()
        if seed is None:
            raise RuntimeError("layers_seeded() must run inside batch_seed(...).")
        return seed

    with keras_compat.seeds_drawn_from(list(layers), next_seed):
        yield
