"""Raw pixels in, the images a backbone expects out: size, channels and scaling."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import keras_compat, validation
from pretrainlib.data.image import image_dataset

# How each family of backbones wants its pixels (0-255 in), from keras.applications'
# `preprocess_input` of each family.
SCALES = {
    "unit": "x / 255: [0, 1] (this library's backbones)",
    "raw": "x as it is: 0-255 (models that rescale themselves: EfficientNet, ConvNeXt, ...)",
    "symmetric": "x / 127.5 - 1: [-1, 1] (MobileNet(V2), Inception, Xception, ResNetV2)",
    "caffe": "RGB -> BGR, minus the ImageNet mean pixel (VGG, ResNet50/101/152)",
    "torch": "x / 255 minus the ImageNet mean, over its std (DenseNet)",
}
# keras.applications model names (`model.name`) by prefix, the first match wins.
_BY_NAME = (("efficientnet", "raw"), ("convnext", "raw"), ("regnet", "raw"),
            ("resnet-rs", "raw"), ("mobilenetv3", "raw"), ("mobilenet", "symmetric"),
            ("inception", "symmetric"), ("xception", "symmetric"), ("nasnet", "symmetric"),
            ("resnet50v2", "symmetric"), ("resnet101v2", "symmetric"),
            ("resnet152v2", "symmetric"), ("vgg16", "caffe"), ("vgg19", "caffe"),
            ("resnet50", "caffe"), ("resnet101", "caffe"), ("resnet152", "caffe"),
            ("densenet", "torch"))
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def scale_for(backbone: keras.Model) -> str:
    """The pixel scaling `backbone` expects (a key of `SCALES`): a model with its own
    `Rescaling` or `Normalization` layer takes 0-255; keras.applications models by
    family; anything else [0, 1].

    Examples:
        >>> import keras, pretrainlib as pl
        >>> from pretrainlib.data.image_preprocessor import scale_for
        >>> scale_for(keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3),
        ...                                          include_top=False))
        'symmetric'
        >>> scale_for(pl.backbones.ConvNet(widths=(4,)))
        'unit'
    """
    if type(backbone).__module__.startswith("pretrainlib."):
        return "unit"
    if any(isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))
           for layer in keras_compat.sublayers(backbone)):
        return "raw"
    if type(backbone).__name__ == "Functional":  # keras.applications build Functionals
        name = backbone.name.lower()
        for prefix, scale in _BY_NAME:
            if name.startswith(prefix):
                return scale
    return "unit"


@keras.saving.register_keras_serializable(package="pretrainlib")
class ImagePreprocessor(keras.layers.Layer):
    """Turns raw images (pixels 0-255, e.g. uint8 arrays) into what a backbone takes.

    Resizes to `image_size`, repeats a grayscale channel when the backbone wants
    three, and scales the pixels the way the backbone expects (`scale`, see
    `SCALES`): this library's backbones take [0, 1]; keras.applications models
    take what their family's `preprocess_input` gives (EfficientNet and ConvNeXt
    rescale 0-255 themselves, MobileNetV2 wants [-1, 1], ...).
    `ImagePreprocessor.for_backbone(backbone)` reads all three off the backbone.

    Give it to `pl.data.image_dataset(..., preprocessor=...)`, or to a model
    (`pl.FineTuner(..., preprocessor=...)`): the model then takes uint8 images in
    `fit`, `evaluate` and `predict` (float arrays are taken as model inputs, as
    they are), and saves the preprocessor with itself.

    Args:
        image_size: `(height, width)` to resize to, or None to keep the size.
        scale: one of `"unit"`, `"raw"`, `"symmetric"`, `"caffe"`, `"torch"`.
        channels: channels the backbone takes (a single channel is repeated up to
            3), or None to keep them.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> pre = pl.data.ImagePreprocessor(image_size=(32, 32), scale="symmetric",
        ...                                 channels=3)
        >>> out = pre(np.full((2, 28, 28, 1), 255, "uint8"))
        >>> tuple(out.shape), float(out.numpy().max())
        ((2, 32, 32, 3), 1.0)
    """

    def __init__(self, image_size=None, scale: str = "unit", channels: int | None = None,
                 **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if image_size is not None:
            image_size = tuple(image_size)
            if len(image_size) != 2:
                raise ValueError("`image_size` must be (height, width). Received: "
                                 f"image_size={image_size}")
            for side in image_size:
                validation.positive_int("image_size", side)
        self.image_size = image_size
        self.scale = validation.one_of("scale", scale, SCALES)
        self.channels = None if channels is None else validation.positive_int("channels",
                                                                              channels)

    @classmethod
    def for_backbone(cls, backbone: keras.Model) -> "ImagePreprocessor":
        """The preprocessor `backbone` needs: its input size and channels, its scaling."""
        shape = tuple(getattr(backbone, "input_shape", (None,) * 4))
        size = shape[1:3] if len(shape) == 4 and None not in shape[1:3] else None
        channels = shape[3] if len(shape) == 4 else None
        return cls(image_size=size, scale=scale_for(backbone), channels=channels)

    def __call__(self, images, *args, **kwargs):
        if isinstance(images, np.ndarray):  # Keras layers take tensors
            images = tf.convert_to_tensor(images)
        return super().__call__(images, *args, **kwargs)

    def call(self, images):
        x = tf.cast(images, "float32")
        if x.shape.rank == 3:
            x = x[..., None]
        if self.image_size is not None:
            x = tf.image.resize(x, self.image_size)
        if self.channels == 3 and x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        elif self.channels == 3 and x.shape[-1] is None:  # traced for 1 or 3 channels
            x = tf.broadcast_to(x, tf.concat([tf.shape(x)[:-1], [3]], axis=0))
            x = tf.ensure_shape(x, [*x.shape[:-1], 3])
        if self.scale == "unit":
            return x / 255.0
        if self.scale == "symmetric":
            return x / 127.5 - 1.0
        if self.scale == "caffe":
            return x[..., ::-1] - tf.constant(_CAFFE_MEAN_BGR)
        if self.scale == "torch":
            return (x / 255.0 - tf.constant(_MEAN)) / tf.constant(_STD)
        return x

    def takes(self, x) -> bool:
        """Whether `x` is raw images this preprocessor turns into model inputs."""
        return isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim in (3, 4)

    def dataset(self, images, labels=None, sample_weight=None, batch_size: int = 32,
                shuffle: bool = True, seed: int | None = None) -> tf.data.Dataset:
        """`images` (and `labels`) as the batched dataset a model trains on."""
        if sample_weight is not None:
            raise ValueError("`sample_weight` with raw images is not supported: build a "
                             "dataset of (images, labels, weights) yourself.")
        return image_dataset(images, labels, batch_size=batch_size, shuffle=shuffle,
                             seed=seed, preprocessor=self)

    def check_backbone(self, backbone: keras.Model) -> None:
        """Raises if `backbone` takes images of another size or scaling."""
        shape = tuple(getattr(backbone, "input_shape", ()) or ())
        if len(shape) == 4 and self.image_size is not None and None not in shape[1:3] \
                and tuple(shape[1:3]) != self.image_size:
            raise ValueError(
                f"`image_size={self.image_size}` differs from the {tuple(shape[1:3])} "
                f"backbone {backbone.name!r} takes. Pass image_size={tuple(shape[1:3])} or "
                "use ImagePreprocessor.for_backbone(backbone).")
        expected = scale_for(backbone)
        if expected != self.scale:
            raise ValueError(
                f"`scale={self.scale!r}` ({SCALES[self.scale]}), but backbone "
                f"{backbone.name!r} expects scale={expected!r} ({SCALES[expected]}). Use "
                "ImagePreprocessor.for_backbone(backbone).")

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "scale": self.scale,
                "channels": self.channels}


def check_pixels(name: str, dataset: tf.data.Dataset, backbone: keras.Model) -> None:
    """Raises before any step when `dataset` holds [0, 1] images for a backbone that
    takes pixels 0-255 (it would scale them twice) or mean-subtracted ones.

    Reads one batch, and only for such backbones (keras.applications' EfficientNet,
    ConvNeXt, VGG, ResNet, ...): for them [0, 1] data is surely a mistake.
    """
    expected = scale_for(backbone)
    if expected not in ("raw", "caffe"):
        return
    for batch in dataset.take(1):
        images = tf.nest.flatten(batch[0] if isinstance(batch, tuple) else batch)[0]
        low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
        if low >= 0.0 and high <= 1.0:
            raise ValueError(
                f"`{name}` holds images in [0, 1], but backbone {backbone.name!r} expects "
                f"scale={expected!r} ({SCALES[expected]}). Build the data with "
                "pl.data.image_dataset(images, labels, preprocessor=pl.data."
                "ImagePreprocessor.for_backbone(backbone)), or give the FineTuner that "
                "preprocessor and fit the uint8 images.")
