"""Image augmentations as Keras layers that run inside tf.data: the light flip and
shift that fine-tuning on few labels wants, random resized crops and the SimCLR /
BYOL view pipeline."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from pretrainlib import validation


@keras.saving.register_keras_serializable(package="pretrainlib")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random area and aspect ratio of each image, resized to `height` x `width`
    (the "random resized crop" of Inception, SimCLR and BYOL).

    Each image gets its own crop: an area fraction drawn uniformly from `scale`, an
    aspect ratio drawn log-uniformly from `ratio`, a position uniform over where the
    box fits; a box that would be taller or wider than the image is clipped to it
    (rather than retried ten times, as torchvision does, so the op stays one
    vectorized `tf.image.crop_and_resize`). In inference mode the whole image is
    resized. Keras has no such layer (its `RandomCrop` keeps the scale, `RandomZoom`
    the aspect ratio of the frame); this one draws from a `keras.random.SeedGenerator`,
    so `pl.data.image_dataset` and the objectives seed it per batch as they do
    Keras's own random layers.

    Args:
        height: output height; the images must be at least this tall.
        width: output width; the images must be at least this wide.
        scale: range of the crop's area as a fraction of the image, within (0, 1].
        ratio: range of the crop's aspect ratio (width / height), positive.
        seed: seed of the layer's own draws (used outside pretrainlib's pipelines).

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> crop = pl.data.RandomResizedCrop(28, 28, scale=(0.2, 1.0), seed=0)
        >>> images = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")
        >>> tuple(crop(images, training=True).shape)
        (4, 28, 28, 1)
    """

    def __init__(self, height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.height = validation.positive_int("height", height)
        self.width = validation.positive_int("width", width)
        self.scale = check_range("scale", scale, upper=1.0)
        self.ratio = check_range("ratio", ratio)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if (height is not None and height < self.height) or (
                width is not None and width < self.width):
            raise ValueError(
                f"RandomResizedCrop(height={self.height}, width={self.width}) crops images "
                f"at least that large. Received: images of {height}x{width}; lower "
                "`height`/`width` or resize the images first.")
        super().build(input_shape)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        if not training:
            return tf.image.resize(images, (self.height, self.width))
        batch = tf.shape(images)[0]
        draw = lambda low, high: keras.random.uniform(  # noqa: E731
            [batch], low, high, seed=self.generator)
        area = draw(*self.scale)
        log_ratio = draw(math.log(self.ratio[0]), math.log(self.ratio[1]))
        # Box sides as fractions of the image: area = h * w in image-relative units,
        # ratio = w / h measured in pixels.
        aspect = tf.exp(log_ratio) * tf.cast(tf.shape(images)[1] / tf.shape(images)[2],
                                             "float32")
        box_height = tf.minimum(tf.sqrt(area / aspect), 1.0)
        box_width = tf.minimum(tf.sqrt(area * aspect), 1.0)
        top = draw(0.0, 1.0) * (1.0 - box_height)
        left = draw(0.0, 1.0) * (1.0 - box_width)
        boxes = tf.stack([top, left, top + box_height, left + box_width], axis=1)
        crops = tf.image.crop_and_resize(tf.cast(images, "float32"), boxes,
                                         tf.range(batch), (self.height, self.width))
        return tf.cast(crops, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "scale": list(self.scale), "ratio": list(self.ratio), "seed": self.seed}


def check_range(name: str, value, upper: float | None = None) -> tuple[float, float]:
    """`value` as a `(low, high)` pair of positive floats, `low <= high <= upper`."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (low, high). Received: {name}={value!r}") \
            from None
    within = "(0, 1]" if upper == 1.0 else "positive"
    if not (0 < low <= high and (upper is None or high <= upper)):
        raise ValueError(f"`{name}` must be a pair low <= high, both {within}. "
                         f"Received: {name}={value!r}")
    return low, high


def flip_and_shift(shift: float = 0.125, flip: bool = True) -> list:
    """The light augmentation for fine-tuning on few labeled images (FixMatch's weak
    view): a random horizontal flip and a random shift of up to `shift` of the
    height and width, the uncovered border filled with 0. Pass it as
    `pl.data.image_dataset(..., augment=pl.data.flip_and_shift())`; it is also
    `pl.semi.Consistency`'s default weak view. Leave `flip` off where mirrored
    images mean something else (digits, text).

    Examples:
        >>> import pretrainlib as pl
        >>> [type(layer).__name__ for layer in pl.data.flip_and_shift()]
        ['RandomFlip', 'RandomTranslation']
    """
    shift = validation.unit_interval("shift", shift)
    layers = [keras.layers.RandomFlip("horizontal")] if flip else []
    if shift:
        layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode="constant"))
    return layers


def contrastive_augmentation(image_shape, crop_scale=(0.2, 1.0), flip: bool = True,
                             jitter: float = 0.4, grayscale: float = 0.2) -> list:
    """The view pipeline of SimCLR and BYOL as a list of Keras layers, for images in
    [0, 1] of `image_shape` `(height, width, channels)`.

    A random resized crop back to the image's size (area fraction in `crop_scale`),
    a horizontal flip, then colour distortion of strength `jitter`: for RGB images
    brightness, contrast and saturation changes of up to `jitter` and a hue shift of
    up to `jitter / 4` (SimCLR's colour jitter), and greyscale with probability
    `grayscale`; for single-channel images brightness and contrast changes (colour
    and greyscale do not apply). Blur is left out: on the small images this library
    trains on by default it erases most of the signal.

    Args:
        image_shape: `(height, width, channels)` of the images.
        crop_scale: range of the crop's area, within (0, 1].
        flip: add a random horizontal flip.
        jitter: strength of the colour distortion, in [0, 1] (0: none).
        grayscale: probability of turning an RGB view grey, in [0, 1].

    Examples:
        >>> import pretrainlib as pl
        >>> [type(layer).__name__ for layer in pl.data.contrastive_augmentation((28, 28, 1))]
        ['RandomResizedCrop', 'RandomFlip', 'RandomBrightness', 'RandomContrast']
    """
    height, width, channels = _image_shape(image_shape)
    check_range("crop_scale", crop_scale, upper=1.0)
    jitter = validation.unit_interval("jitter", jitter)
    grayscale = validation.unit_interval("grayscale", grayscale)
    layers = [RandomResizedCrop(height, width, scale=crop_scale)]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if jitter and channels == 3:
        layers.append(keras.layers.RandomColorJitter(
            value_range=(0, 1), brightness_factor=jitter, contrast_factor=jitter,
            saturation_factor=(max(0.0, 0.5 - jitter / 2), min(1.0, 0.5 + jitter / 2)),
            hue_factor=jitter / 4))
    elif jitter:
        layers += [keras.layers.RandomBrightness(jitter / 2, value_range=(0, 1)),
                   keras.layers.RandomContrast(jitter, value_range=(0, 1))]
    if grayscale and channels == 3:
        layers.append(keras.layers.RandomGrayscale(grayscale))
    return layers


def _image_shape(image_shape) -> tuple[int, int, int]:
    shape = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else None
    if (shape is None or len(shape) != 3
            or not all(isinstance(s, int) and s > 0 for s in shape)):
        raise ValueError("`image_shape` must be (height, width, channels), positive ints. "
                         f"Received: image_shape={image_shape!r}")
    return shape
