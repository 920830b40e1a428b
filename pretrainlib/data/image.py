"""tf.data pipelines for images: scale, shuffle, batch, augment, prefetch."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import epochs, randomness, validation


def image_dataset(
    images,
    labels=None,
    batch_size: int = 32,
    augment=None,
    shuffle: bool = True,
    seed: int | None = None,
    preprocessor=None,
) -> tf.data.Dataset:
    """Builds a batched `tf.data.Dataset` of float32 images, in [0, 1] by default.

    Elements are images `[batch, height, width, channels]` (a channel axis is added
    to grayscale `[n, height, width]` arrays), paired with int32 labels when given.
    uint8 images are divided by 255; float images are taken as already scaled.
    With `preprocessor` (a `pl.data.ImagePreprocessor`, e.g.
    `ImagePreprocessor.for_backbone(backbone)`) pixels 0-255 are resized and scaled
    as it says instead: keras.applications models such as EfficientNet and
    ConvNeXt take 0-255, MobileNetV2 [-1, 1].
    Every epoch is reshuffled, its order a function of `seed` and the epoch number
    alone (without `seed`, one is drawn from Python's `random`). `augment` runs
    inside tf.data, per batch, with `training=True`: every epoch sees fresh random
    transforms, drawn from the seed, the epoch and the batch's place in it (the same
    with or without checkpoints, on a resume and under a distribution strategy), and
    the model itself stays deterministic (which lets a frozen backbone's features
    be cached when there is no augmentation).

    Args:
        images: array `[n, height, width]` or `[n, height, width, channels]`.
        labels: optional integer class ids, one per image (floats: regression targets).
        batch_size: images per batch.
        augment: a Keras layer, or a list of them, e.g. `pl.data.flip_and_shift()`
            (a flip and a shift of up to 12.5 %: the default to fine-tune on few
            labeled images with).
        shuffle: reshuffle every epoch.
        seed: seed for shuffling.
        preprocessor: how pixels 0-255 become the backbone's inputs (default: / 255).

    Examples:
        >>> import keras, pretrainlib as pl
        >>> fm = pl.datasets.fashion_mnist().train.sample(40, seed=0)
        >>> ds = pl.data.image_dataset(fm.images, fm.labels, batch_size=8,
        ...                            augment=[keras.layers.RandomTranslation(0.1, 0.1)])
        >>> x, y = next(iter(ds))
        >>> x.shape, x.dtype.name, y.shape
        (TensorShape([8, 28, 28, 1]), 'float32', TensorShape([8]))
    """
    images = _check_images(images)
    validation.positive_int("batch_size", batch_size)
    layers = check_augment(augment)
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    check_preprocessor(preprocessor)
    columns = (images,)
    if labels is not None:
        columns += (validation.class_labels("labels", labels, len(images), "image"),)

    prepare = preparer(layers, scale, preprocessor, labels is not None)
    return epochs.Examples(columns, batch_size, shuffle=shuffle, seed=seed,
                           prepare=prepare, draws=bool(layers)).dataset()


def preparer(layers: list, scale: float, preprocessor, labeled: bool, load=None):
    """`prepare(batch)` for an `epochs.Examples` of images (and labels): `load` (if
    given) turns the batch's first column into pixels, which are scaled (`* scale`,
    or by `preprocessor`) and augmented by `layers`."""
    def prepare(batch):
        # Augmentation draws from the seed of the batch's place in its epoch, so an
        # epoch's transforms replay (see `pl.randomness.layers_seeded`).
        x, *y = batch if labeled else (batch,)
        if load is not None:
            x = load(x)
        x = tf.cast(x, "float32") * scale if preprocessor is None else preprocessor(x)
        x = augmented(x, layers)
        return (x, *y) if y else x

    return prepare


def augmented(images, layers: list):
    """`images` through the augmentation `layers` in training mode, their draws made
    from the current batch seed (see `pl.randomness.layers_seeded`)."""
    with randomness.layers_seeded(layers):
        for layer in layers:
            images = layer(images, training=True)
    return images


def _check_images(images) -> np.ndarray:
    try:
        array = np.asarray(images)
    except Exception:  # ragged lists, objects
        array = None
    if array is None or array.dtype == object or array.ndim not in (3, 4):
        raise ValueError(
            "`images` must be an array [n, height, width] or [n, height, width, channels]. "
            f"Received: images with shape {getattr(array, 'shape', None)}"
        )
    if len(array) == 0:
        raise ValueError("`images` is empty; pass at least one image.")
    if not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            "`images` must be uint8 in [0, 255] or floats already scaled. "
            f"Received: images of dtype {array.dtype}"
        )
    return array[..., None] if array.ndim == 3 else array


def check_preprocessor(preprocessor) -> None:
    if preprocessor is not None and not hasattr(preprocessor, "takes"):
        raise TypeError("`preprocessor` must be a pl.data.ImagePreprocessor. Received: "
                        f"preprocessor of type {type(preprocessor).__name__}")


def check_augment(augment, name: str = "augment") -> list:
    """`augment` (None, a Keras layer or a list of them) as a list of layers."""
    if augment is None:
        return []
    layers = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    for layer in layers:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                f"`{name}` must be a Keras layer or a list of them (e.g. "
                "keras.layers.RandomFlip('horizontal')). Received: an item of type "
                f"{type(layer).__name__}"
            )
    return layers
