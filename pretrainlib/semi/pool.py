"""The unlabeled pool a FineTuner reads beside its labeled batches.

Run batch `k` (counted over the model's optimizer steps) reads unlabeled block `k`:
`ratio x batch_size` examples, each epoch of the pool a permutation keyed by
`(seed, epoch)` (see `pl.epochs`), and the views drawn from the block's place in it.
So a rerun, a checkpointed run, a resumed run and a distributed run read the same
unlabeled examples at the same step, and no block is built by reading the ones
before it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pretrainlib import epochs, randomness


class UnlabeledPool:
    """Blocks of `block` unlabeled model inputs, each as its views.

    Args:
        inputs: model inputs (a nest of arrays sharing their first axis), or a
            batched `tf.data.Dataset` of them (read in its own order).
        block: examples per step.
        prepare: `prepare(batch) -> tuple of views` (runs in tf.data, under the
            block's seed).
        seed: the seed of the pool's epoch orders (None: drawn).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.semi.pool import UnlabeledPool
        >>> pool = UnlabeledPool(np.arange(6), block=3, prepare=lambda b: (b,), seed=0)
        >>> blocks = [sorted(b.numpy().tolist()) for b, in pool.stream(0).take(2)]
        >>> sorted(blocks[0] + blocks[1])  # one epoch: every example once
        [0, 1, 2, 3, 4, 5]
    """

    def __init__(self, inputs, block: int, prepare, seed: int | None = None):
        self.block = int(block)
        self.prepare = prepare
        self.dataset = inputs if isinstance(inputs, tf.data.Dataset) else None
        if self.dataset is None:
            self.columns = tf.nest.map_structure(tf.convert_to_tensor, inputs)
            length = int(tf.shape(tf.nest.flatten(self.columns)[0])[0])
            self.repeats = -(-self.block // length)  # a pool smaller than a block repeats
            blocks = length * self.repeats // self.block
            self.length = length
            self.source = epochs.EpochSource(self._epoch_blocks, blocks, seed, draws=True)
            self.seed = self.source.seed
        else:
            self.seed = epochs.draw_seed() if seed is None else int(seed)

    def with_seed(self, seed: int) -> "UnlabeledPool":
        inputs = self.dataset if self.dataset is not None else self.columns
        return UnlabeledPool(inputs, self.block, self.prepare, seed)

    def _epoch_blocks(self, key, first_block):
        order = tf.tile(tf.range(self.length, dtype="int64"), [self.repeats])
        order = tf.random.experimental.stateless_shuffle(order, key)
        count = self.source.num_batches
        blocks = tf.reshape(order[:count * self.block], [count, self.block])
        indices = tf.data.Dataset.from_tensor_slices(blocks).skip(first_block)
        gather = lambda i: tf.nest.map_structure(lambda c: tf.gather(c, i), self.columns)
        return epochs.prepared(indices, key, first_block, self.block, self.prepare,
                               build=gather)

    def stream(self, first: int, step: int = 1) -> tf.data.Dataset:
        """The views of blocks `first`, `first + step`, `first + 2 step`, ... ."""
        if self.dataset is not None:
            blocks = (self.dataset.unbatch().repeat().batch(self.block, drop_remainder=True)
                      .skip(first))
            base = tf.constant([self.seed, 0], "int64")

            def prepare(batch, number):
                with randomness.batch_seed(tf.random.experimental.stateless_fold_in(
                        base, number)):
                    return self.prepare(batch)

            data = tf.data.Dataset.zip(blocks, tf.data.Dataset.counter(first)).map(
                prepare, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            epoch, within = divmod(int(first), self.source.num_batches)
            data = self.source.stream(epoch, within)
        if step > 1:
            data = data.shard(step, 0)
        return data.prefetch(tf.data.AUTOTUNE)


def unlabeled_inputs(name: str, unlabeled, kind: str, preprocessor):
    """`unlabeled` as model inputs before augmentation: token ids for text (raw texts
    go through `preprocessor`), images scaled to [0, 1] (uint8 / 255). A
    `tf.data.Dataset` is returned as it is, after checking it has no labels."""
    if isinstance(unlabeled, tf.data.Dataset):
        if isinstance(unlabeled.element_spec, tuple):
            raise ValueError(
                f"`{name}` yields tuples {unlabeled.element_spec}, but an unlabeled pool "
                "holds inputs only: pass `dataset.map(lambda x, *labels: x)`, or build it "
                "without labels.")
        return unlabeled
    if unlabeled is None or (hasattr(unlabeled, "__len__") and len(unlabeled) == 0):
        raise ValueError(f"`{name}` is empty: pass the unlabeled examples (texts, images "
                         "or model inputs), or leave it out to train on the labels alone.")
    if kind == "text":
        if preprocessor is not None and preprocessor.takes(unlabeled):
            return {k: v.numpy() for k, v in preprocessor(list(map(str, unlabeled))).items()}
        if isinstance(unlabeled, dict):
            return {k: np.asarray(v) for k, v in unlabeled.items()}
        raise ValueError(
            f"`{name}` must be raw texts (with a FineTuner preprocessor), a dict of "
            "token-id arrays, or a tf.data.Dataset of them. Received: "
            f"{type(unlabeled).__name__}")
    images = np.asarray(unlabeled)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or not (images.dtype == np.uint8
                                or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"`{name}` must be images [n, height, width(, channels)], uint8 "
                         "0-255 or floats in [0, 1]. Received: an array of shape "
                         f"{images.shape} and dtype {images.dtype}")
    return images.astype("float32") / 255 if images.dtype == np.uint8 else images


def pool_for(inputs, method, kind: str, preprocessor, batch_size: int) -> UnlabeledPool:
    """The pool of `inputs` (from `unlabeled_inputs`) that `method` reads beside
    labeled batches of `batch_size`: blocks of `method.ratio * batch_size`, as the
    method's views, scaled for the backbone by an image `preprocessor` after
    augmentation (the views see pixels in [0, 1])."""
    weak, strong = method.views(kind, getattr(preprocessor, "tokenizer", None))
    finish = lambda images: images
    if kind == "image" and preprocessor is not None and not isinstance(
            inputs, tf.data.Dataset):
        finish = lambda images: preprocessor(images * 255.0)

    def prepare(batch):
        views = (finish(weak(batch)),)
        return views if strong is None else views + (finish(strong(batch)),)

    return UnlabeledPool(inputs, method.ratio * batch_size, prepare)
