"""Autoencoders: denoising and masked image modeling, for images and vectors."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.backbones.outputs import (
    feature_map,
    model_input,
    pooled_features,
    single_input,
)
from pretrainlib import randomness
from pretrainlib.objectives.objective import Objective
from pretrainlib.losses import GlobalWeightedMean
from pretrainlib.metrics import PSNR, squared_error

NOISES = ("mask", "gaussian", "dropout")


@keras.saving.register_keras_serializable(package="pretrainlib")
class Autoencoder(Objective):
    """Reconstruct clean inputs from corrupted ones; keep the encoder.

    Corruption (`noise`), redrawn every epoch inside tf.data:

    - `"mask"` (default): masked image modeling as in SimMIM / MAE. Each image
      loses exactly `round(mask_ratio * patches)` of its `patch_size` x `patch_size`
      patches (replaced by `mask_value`), and the loss and metrics count the masked
      pixels only, so the model must infer hidden content from context. For
      vectors, `mask_ratio` of the features are masked the same way.
    - `"gaussian"`: add N(0, `noise_std`) noise; loss over every position.
    - `"dropout"`: zero each value with probability `dropout_rate`; loss over every
      position.

    The decoder, dropped after pretraining, is deliberately light so the encoder
    does the work: for images, a 1x1 convolution from the backbone's feature map
    to `stride**2 * channels` values per location, rearranged to pixels
    (SimMIM's linear head), optionally after one 3x3 convolution of `decoder_dim`
    channels; for vectors, an MLP of width `decoder_dim` (default 256). Metrics:
    `mse` and `psnr` (dB, pixel range [0, 1]).

    Args:
        noise: `"mask"`, `"gaussian"` or `"dropout"`.
        mask_ratio: fraction of patches (or features) masked, in (0, 1).
        patch_size: side of the square patches masked together; must divide the
            image height and width.
        mask_value: what masked pixels are set to (images are in [0, 1]).
        noise_std: standard deviation of the Gaussian noise.
        dropout_rate: probability of zeroing each value for `"dropout"` noise.
        decoder_dim: width of the decoder's hidden layer (None: linear decoder for
            images, 256 for vectors).

    Examples:
        >>> import pretrainlib as pl
        >>> images = pl.datasets.fashion_mnist().unlabeled[:64]
        >>> net = pl.backbones.ConvNet(widths=(8, 16))
        >>> pre = pl.Pretrainer(net, pl.objectives.Autoencoder(mask_ratio=0.5, patch_size=4))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.image_dataset(images), verbose=0)
        >>> sorted(history.history)
        ['loss', 'mse', 'psnr']
    """

    def __init__(
        self,
        noise: str = "mask",
        mask_ratio: float = 0.5,
        patch_size: int = 4,
        mask_value: float = 0.0,
        noise_std: float = 0.1,
        dropout_rate: float = 0.25,
        decoder_dim: int | None = None,
    ):
        self.noise = validation.one_of("noise", noise, NOISES)
        self.mask_ratio = validation.open_unit_interval("mask_ratio", mask_ratio)
        self.patch_size = validation.positive_int("patch_size", patch_size)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise ValueError(f"`mask_value` must be a number. Received: mask_value={mask_value!r}")
        self.mask_value = float(mask_value)
        self.noise_std = validation.positive_float("noise_std", noise_std)
        self.dropout_rate = validation.open_unit_interval("dropout_rate", dropout_rate)
        if decoder_dim is not None:
            validation.positive_int("decoder_dim", decoder_dim)
        self.decoder_dim = decoder_dim

    def validate_backbone(self, backbone: keras.Model) -> None:
        inputs = single_input(backbone, "Autoencoder")
        shape = tuple(inputs.shape)
        if "int" in str(inputs.dtype) or len(shape) not in (2, 4) or None in shape[1:]:
            raise ValueError(
                "Autoencoder reconstructs float inputs: images [batch, height, width, "
                "channels] or vectors [batch, features], with known sizes. For token ids "
                f"use pl.objectives.MaskedLM. Received: backbone={backbone.name!r} with "
                f"input shape {shape}, dtype {inputs.dtype}"
            )
        if len(shape) == 4 and self.noise == "mask" and (
                shape[1] % self.patch_size or shape[2] % self.patch_size):
            raise ValueError(
                f"`patch_size` must divide the image height and width. Received: "
                f"patch_size={self.patch_size} for images of shape {shape[1:]}"
            )

    # === Data ===
    def transform(self, batch):
        if isinstance(batch, tuple):  # labeled data: the labels are not used
            batch = batch[0]
        clean = tf.cast(batch, "float32")
        if self.noise == "gaussian":
            return clean + randomness.normal(tf.shape(clean), stddev=self.noise_std), clean
        if self.noise == "dropout":
            keep = randomness.uniform(tf.shape(clean)) >= self.dropout_rate
            return tf.where(keep, clean, 0.0), clean
        masked = self.mask([tf.shape(clean)[0], *clean.shape[1:]])
        corrupted = tf.where(masked[..., None] if clean.shape.rank == 4 else masked,
                             self.mask_value, clean)
        return corrupted, clean, tf.cast(masked, "float32")

    def mask(self, shape) -> tf.Tensor:
        """Boolean mask for a batch of `shape` (`[batch, h, w, c]` images or
        `[batch, d]` vectors, sizes after the batch known): `[batch, h, w]` (whole
        patches) or `[batch, d]`, with exactly `round(mask_ratio * units)` units
        masked per row."""
        batch, *sizes = shape
        if len(sizes) == 3:
            grid = (sizes[0] // self.patch_size, sizes[1] // self.patch_size)
        else:
            grid = (sizes[0],)
        units = math.prod(grid)
        count = round(self.mask_ratio * units)
        # The `count` smallest of per-unit uniform draws: an exact ratio per row.
        ranks = tf.argsort(tf.argsort(randomness.uniform([batch, units]), axis=1), axis=1)
        masked = tf.reshape(ranks < count, [batch, *grid])
        if len(grid) == 2:
            masked = tf.repeat(tf.repeat(masked, self.patch_size, axis=1), self.patch_size, axis=2)
        return masked

    # === Model ===
    def build(self, backbone: keras.Model):
        inputs = model_input(backbone)
        outputs = backbone(inputs)
        input_shape = tuple(inputs.shape[1:])
        if len(input_shape) == 1:
            x = pooled_features(outputs)
            x = keras.layers.Dense(self.decoder_dim or 256, activation="gelu",
                                   name="decoder_hidden")(x)
            return inputs, keras.layers.Dense(input_shape[0], name="decoder_output")(x)
        features = feature_map(outputs)
        if features is None:
            raise ValueError(
                "Autoencoder on images needs a spatial feature map from the backbone "
                "(a 'feature_map' output or a [batch, h, w, c] tensor); "
                f"{backbone.name!r} gives none."
            )
        height, width, channels = input_shape
        stride = height // features.shape[1]
        if stride * features.shape[1] != height or stride * features.shape[2] != width:
            raise ValueError(
                f"The feature map {tuple(features.shape[1:3])} does not tile the "
                f"{(height, width)} image by a whole stride; the decoder cannot map it "
                "back to pixels."
            )
        x = features
        if self.decoder_dim:
            x = keras.layers.Conv2D(self.decoder_dim, 3, padding="same", activation="gelu",
                                    name="decoder_hidden")(x)
        x = keras.layers.Conv2D(stride * stride * channels, 1, name="decoder_output")(x)
        if stride > 1:
            x = keras.layers.Lambda(lambda t: keras.ops.depth_to_space(t, stride),
                                    name="decoder_to_pixels")(x)
        return inputs, x

    def loss(self):
        return ReconstructionError()

    def weighted_metrics(self) -> list:
        return [keras.metrics.MeanMetricWrapper(squared_error, name="mse"), PSNR()]

    def get_config(self) -> dict:
        return {"noise": self.noise, "mask_ratio": self.mask_ratio,
                "patch_size": self.patch_size, "mask_value": self.mask_value,
                "noise_std": self.noise_std, "dropout_rate": self.dropout_rate,
                "decoder_dim": self.decoder_dim}


@keras.saving.register_keras_serializable(package="pretrainlib")
class ReconstructionError(GlobalWeightedMean, keras.losses.Loss):
    """Mean squared error over the positions a per-position sample weight selects
    (all positions without weights): the masked-pixel loss of MAE / SimMIM.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.autoencoder import ReconstructionError
        >>> clean, predicted = np.zeros((1, 2, 2, 1)), np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])
        >>> weights = np.array([[[1, 1], [0, 0]]])
        >>> float(ReconstructionError()(clean, predicted, sample_weight=weights))
        0.5
    """

    def __init__(self, name: str = "reconstruction_error",
                 reduction: str = "mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return squared_error(y_true, y_pred)
