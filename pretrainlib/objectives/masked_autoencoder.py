"""MAE: masked autoencoders for Vision Transformers (He et al., 2021), with the encoder
seeing only the visible patches."""

from __future__ import annotations

import keras
import keras_hub
import tensorflow as tf

from pretrainlib import randomness, validation
from pretrainlib.backbones.transformer import transformer_blocks
from pretrainlib.backbones.vision_encoder import VisionEncoder
from pretrainlib.metrics import squared_error
from pretrainlib.objectives.autoencoder import ReconstructionError
from pretrainlib.objectives.objective import Objective


@keras.saving.register_keras_serializable(package="pretrainlib")
class MaskedAutoencoder(Objective):
    """Hide most patches of each image; encode only the visible ones; a light decoder
    reconstructs the hidden pixels (MAE).

    For a `pl.backbones.VisionEncoder`. Every image loses a random `mask_ratio` of
    its patches, redrawn each epoch from the batch's seed. The encoder (the
    backbone's own patch embedding, position embedding and Transformer blocks) runs
    on the visible patches alone, so pretraining costs about `1 - mask_ratio` of a
    full pass; a decoder of `decoder_layers` narrow Transformer blocks gets the
    encoded patches back in place, a learned mask token everywhere else, and its
    own position embedding, and predicts every patch's pixels. The loss is the mean
    squared error over the hidden patches, of pixels normalized per patch when
    `normalize_targets` (MAE's best setting). The decoder is dropped after
    pretraining. For convolutional backbones use `pl.objectives.Autoencoder`
    (SimMIM-style: masked pixels in, the full image through the network).

    Args:
        mask_ratio: fraction of patches hidden, in (0, 1) (MAE: 0.75).
        decoder_dim: width of the decoder (> 0).
        decoder_layers: Transformer blocks in the decoder (> 0).
        decoder_heads: attention heads of the decoder's blocks.
        normalize_targets: reconstruct each patch's pixels normalized by its own mean
            and standard deviation.

    Examples:
        >>> import pretrainlib as pl
        >>> images = pl.datasets.fashion_mnist().unlabeled[:64]
        >>> vit = pl.backbones.VisionEncoder(patch_size=7, num_layers=1, hidden_dim=16,
        ...                                  num_heads=2)
        >>> pre = pl.Pretrainer(vit, pl.objectives.MaskedAutoencoder(decoder_dim=16,
        ...                                                          decoder_heads=2))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.image_dataset(images), verbose=0)
        >>> sorted(history.history)
        ['loss', 'mse']
    """

    def __init__(self, mask_ratio: float = 0.75, decoder_dim: int = 64,
                 decoder_layers: int = 1, decoder_heads: int = 4,
                 normalize_targets: bool = True):
        self.mask_ratio = validation.open_unit_interval("mask_ratio", mask_ratio)
        self.decoder_dim = validation.positive_int("decoder_dim", decoder_dim)
        self.decoder_layers = validation.positive_int("decoder_layers", decoder_layers)
        self.decoder_heads = validation.positive_int("decoder_heads", decoder_heads)
        if decoder_dim % decoder_heads:
            raise ValueError("`decoder_dim` must be divisible by `decoder_heads`. Received: "
                             f"decoder_dim={decoder_dim}, decoder_heads={decoder_heads}")
        self.normalize_targets = bool(normalize_targets)
        self.grid = self.patch_size = None

    def validate_backbone(self, backbone: keras.Model) -> None:
        if not isinstance(backbone, VisionEncoder):
            raise ValueError(
                "MaskedAutoencoder drops patches inside a pl.backbones.VisionEncoder. For "
                "another backbone use pl.objectives.Autoencoder (masked pixels, SimMIM-"
                f"style). Received: backbone={backbone.name!r} ({type(backbone).__name__})")
        height, width, _ = backbone.image_shape
        self.patch_size = backbone.patch_size
        self.grid = (height // self.patch_size, width // self.patch_size)
        if self.visible_count() < 1:
            raise ValueError(f"`mask_ratio`={self.mask_ratio} hides all {self.patches} patches;"
                             " lower it.")

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def visible_count(self) -> int:
        return self.patches - round(self.mask_ratio * self.patches)

    # === Data ===
    def transform(self, batch):
        if isinstance(batch, tuple):  # labeled data: the labels are not used
            batch = batch[0]
        images = tf.cast(batch, "float32")
        size = tf.shape(images)[0]
        # MAE's shuffle: patches ordered by a uniform draw; the first ones stay visible.
        order = tf.argsort(randomness.uniform([size, self.patches]), axis=1)
        restore = tf.argsort(order, axis=1)
        visible = order[:, :self.visible_count()]
        hidden = tf.cast(restore >= self.visible_count(), "float32")  # [batch, patches]
        targets = self.patchify(images)
        if self.normalize_targets:
            mean, variance = tf.nn.moments(targets, axes=[-1], keepdims=True)
            targets = (targets - mean) / tf.sqrt(variance + 1e-6)
        inputs = {"images": images, "visible": visible, "restore": restore}
        return inputs, targets, hidden

    def patchify(self, images):
        """`[batch, h, w, c]` -> `[batch, patches, patch_size**2 * c]`, patches in the
        row-major order of the encoder's sequence."""
        p, (rows, columns) = self.patch_size, self.grid
        channels = images.shape[-1]
        x = tf.reshape(images, [-1, rows, p, columns, p, channels])
        x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
        return tf.reshape(x, [-1, rows * columns, p * p * channels])

    # === Model ===
    def build(self, backbone: VisionEncoder):
        visible_count = self.visible_count()
        inputs = {"images": keras.Input(backbone.image_shape, name="images"),
                  "visible": keras.Input((visible_count,), dtype="int32", name="visible"),
                  "restore": keras.Input((self.patches,), dtype="int32", name="restore")}
        # The backbone's own layers, on the visible patches only.
        x = backbone.to_sequence(backbone.patch_embedding(inputs["images"]))
        x = x + backbone.position_embedding(x)
        x = keras.ops.take_along_axis(x, inputs["visible"][..., None], axis=1)
        for layer in backbone.transformer_layers:
            x = layer(x)
        encoded = backbone.final_layer_norm(x)
        # The decoder: every patch back in place, mask tokens where hidden.
        x = keras.layers.Dense(self.decoder_dim, name="decoder_embedding")(encoded)
        x = MaskTokens(self.patches, name="decoder_mask_tokens")(x, inputs["restore"])
        x = x + keras_hub.layers.PositionEmbedding(
            self.patches, initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="decoder_position_embedding")(x)
        blocks, _ = transformer_blocks(self.decoder_layers, self.decoder_dim,
                                       self.decoder_heads, None, 0.0, layer_norm_epsilon=1e-6)
        for i, block in enumerate(blocks):
            block.name = f"decoder_block_{i}"
            x = block(x)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")(x)
        pixels = self.patch_size ** 2 * backbone.image_shape[-1]
        return inputs, keras.layers.Dense(pixels, name="decoder_pixels")(x)

    def loss(self):
        return ReconstructionError()

    def weighted_metrics(self) -> list:
        return [keras.metrics.MeanMetricWrapper(squared_error, name="mse")]

    def get_config(self) -> dict:
        return {"mask_ratio": self.mask_ratio, "decoder_dim": self.decoder_dim,
                "decoder_layers": self.decoder_layers, "decoder_heads": self.decoder_heads,
                "normalize_targets": self.normalize_targets}


@keras.saving.register_keras_serializable(package="pretrainlib")
class MaskTokens(keras.layers.Layer):
    """Puts encoded visible patches `[batch, visible, d]` back among `patches`
    positions: a learned mask token fills the hidden ones, and `restore[b, i]` says
    which of `visible patches + mask tokens` goes to position i (MAE's unshuffle).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.masked_autoencoder import MaskTokens
        >>> layer = MaskTokens(3)
        >>> out = layer(np.ones((1, 1, 2), "float32"), np.array([[1, 0, 2]]))
        >>> out.numpy()[0, 1].tolist()  # the one visible patch went to position 1
        [1.0, 1.0]
    """

    def __init__(self, patches: int, **kwargs):
        super().__init__(**kwargs)
        self.patches = patches

    def build(self, x_shape, restore_shape=None):
        self.mask_token = self.add_weight(
            shape=(x_shape[-1],), initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="mask_token")

    def call(self, x, restore):
        batch, visible = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
        tokens = keras.ops.broadcast_to(
            keras.ops.cast(self.mask_token, x.dtype),
            (batch, self.patches - visible, keras.ops.shape(x)[-1]))
        full = keras.ops.concatenate([x, tokens], axis=1)
        return keras.ops.take_along_axis(full, keras.ops.cast(restore, "int32")[..., None],
                                         axis=1)

    def compute_output_shape(self, x_shape, restore_shape=None):
        return (x_shape[0], self.patches, x_shape[-1])

    def get_config(self):
        return {**super().get_config(), "patches": self.patches}
