"""The views of unlabeled examples that semi-supervised methods compare, in tf.data.

Every function here takes a batch of model inputs and draws its random numbers from
`pl.randomness` (the seed of the batch's place in the run), so a view replays on a
rerun, a resume and under a distribution strategy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import randomness
from pretrainlib.data.augmentation import flip_and_shift
from pretrainlib.data.image import augmented, check_augment


def identity(batch):
    return batch


def layer_list(name: str, layers) -> list | None:
    """`layers` (a Keras layer or a list of them) as a list; None stays None."""
    return None if layers is None else check_augment(layers, name)


def default_weak_layers() -> list:
    """FixMatch's weak augmentation: a horizontal flip and a shift of up to 12.5 %."""
    return flip_and_shift(0.125)


def default_strong_layers() -> list:
    """The weak augmentation, then contrast and brightness changes and an erased
    patch (FixMatch's Cutout); all of them work on one channel as on three."""
    return default_weak_layers() + [
        keras.layers.RandomContrast(0.5, value_range=(0, 1)),
        keras.layers.RandomBrightness(0.3, value_range=(0, 1)),
        keras.layers.RandomErasing(factor=1.0, scale=(0.05, 0.25), fill_value=0.5,
                                   value_range=(0, 1)),
    ]


def augmenter(layers: list):
    """A view that runs `layers` (in training mode, seeded by the batch)."""
    return lambda images: augmented(images, layers)


def token_replacer(tokenizer, rate: float):
    """A view of `{"token_ids", ...}` rows with a fraction `rate` of the word pieces
    replaced: half of them by `[MASK]`, half by word pieces drawn uniformly from the
    batch's own (so frequent word pieces are drawn often, as in the text). Special
    tokens and padding stay.

    Examples:
        >>> import tensorflow as tf, pretrainlib as pl
        >>> from pretrainlib.semi.views import token_replacer
        >>> tok = pl.text.WordPieceTokenizer.train(["a small dog", "a cat"], vocab_size=30)
        >>> batch = pl.text.TextPreprocessor(tok, 8)(["a small dog"] * 64)
        >>> replaced = token_replacer(tok, 0.5)(batch)["token_ids"]
        >>> words = batch["token_ids"][:, 1:4]
        >>> changed = float(tf.reduce_mean(tf.cast(replaced[:, 1:4] != words, "float32")))
        >>> 0.1 < changed < 0.5, bool(tf.reduce_all(replaced[:, 4:] == batch["token_ids"][:, 4:]))
        (True, True)
    """
    special = tf.constant(tokenizer.special_ids, "int32")
    mask_id = int(tokenizer.mask_id)

    def replace(inputs):
        ids = tf.cast(inputs["token_ids"], "int32")
        is_word = tf.reduce_all(ids[..., None] != special, axis=-1)
        draw = randomness.uniform(tf.shape(ids))
        words = tf.boolean_mask(ids, is_word)
        picked = tf.cast(randomness.uniform(tf.shape(ids)) * tf.cast(
            tf.maximum(tf.size(words), 1), "float32"), "int32")
        drawn = tf.gather(tf.concat([words, [mask_id]], 0),
                          tf.minimum(picked, tf.maximum(tf.size(words) - 1, 0)))
        replacement = tf.where(draw < rate / 2, mask_id, drawn)
        new = tf.where(is_word & (draw < rate), replacement, ids)
        return {**inputs, "token_ids": tf.cast(new, inputs["token_ids"].dtype)}

    return replace
