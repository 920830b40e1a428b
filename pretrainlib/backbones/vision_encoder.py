"""A small ViT-style encoder: image patches through Transformer blocks."""

from __future__ import annotations

import keras
import keras_hub

from pretrainlib import validation
from pretrainlib.backbones.conv_net import _image_shape
from pretrainlib.backbones.transformer import transformer_blocks


@keras.saving.register_keras_serializable(package="pretrainlib")
class VisionEncoder(keras_hub.models.Backbone):
    """ViT-style encoder: non-overlapping patches, position embeddings, Transformer.

    Each `patch_size` x `patch_size` patch is projected linearly (a strided
    convolution) to `hidden_dim`, a learned position embedding is added, and
    pre-LayerNorm KerasHub `TransformerEncoder` blocks mix the patches. There is no
    class token: `pooled_output` is the mean over patches.

    Inputs: float images `[batch, height, width, channels]` in [0, 1].
    Outputs: `{"sequence_output": [batch, patches, hidden_dim],
    "feature_map": [batch, height / patch_size, width / patch_size, hidden_dim]`
    (the same features on the patch grid), `"pooled_output": [batch, hidden_dim]}`.

    Layer groups, bottom to top: `embeddings`, `block_0` ... `block_{num_layers-1}`.

    Args:
        input_shape: `(height, width, channels)`; height and width divisible by
            `patch_size`.
        patch_size: side of the square patches.
        num_layers: transformer blocks (as in `pl.backbones.TextEncoder`).
        hidden_dim: width of the patch features.
        num_heads: attention heads per block.
        intermediate_dim: width of each block's feed-forward layer.
        dropout: dropout rate inside the encoder.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> vit = pl.backbones.VisionEncoder(input_shape=(28, 28, 1), patch_size=7,
        ...                                  num_layers=2, hidden_dim=32)
        >>> out = vit(np.zeros((2, 28, 28, 1), "float32"))
        >>> tuple(out["sequence_output"].shape), tuple(out["feature_map"].shape)
        ((2, 16, 32), (2, 4, 4, 32))
        >>> list(vit.layer_groups)
        ['embeddings', 'block_0', 'block_1']
    """

    def __init__(
        self,
        input_shape=(28, 28, 1),
        patch_size: int = 4,
        num_layers: int = 4,
        hidden_dim: int = 128,
        num_heads: int = 4,
        intermediate_dim: int | None = None,
        dropout: float = 0.0,
        dtype=None,
        **kwargs,
    ):
        input_shape = _image_shape(input_shape)
        validation.positive_int("patch_size", patch_size)
        if input_shape[0] % patch_size or input_shape[1] % patch_size:
            raise ValueError(
                "Image height and width must be divisible by `patch_size`. Received: "
                f"input_shape={input_shape}, patch_size={patch_size}"
            )
        self.transformer_layers, intermediate_dim = transformer_blocks(
            num_layers, hidden_dim, num_heads, intermediate_dim, dropout,
            layer_norm_epsilon=1e-6, dtype=dtype)
        grid = (input_shape[0] // patch_size, input_shape[1] // patch_size)

        # === Layers ===
        self.patch_embedding = keras.layers.Conv2D(hidden_dim, patch_size, strides=patch_size,
                                                   dtype=dtype, name="patch_embedding")
        self.to_sequence = keras.layers.Reshape((grid[0] * grid[1], hidden_dim), dtype=dtype,
                                                name="to_sequence")
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=grid[0] * grid[1],
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=dtype, name="position_embedding",
        )
        self.final_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, dtype=dtype, name="final_layer_norm")
        self.to_grid = keras.layers.Reshape((*grid, hidden_dim), dtype=dtype, name="to_grid")
        self.mean_pool = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")

        # === Functional Model ===
        images = keras.Input(shape=input_shape, name="images")
        x = self.to_sequence(self.patch_embedding(images))
        x = x + self.position_embedding(x)
        for layer in self.transformer_layers:
            x = layer(x)
        x = self.final_layer_norm(x)
        super().__init__(
            inputs=images,
            outputs={"sequence_output": x, "feature_map": self.to_grid(x),
                     "pooled_output": self.mean_pool(x)},
            dtype=dtype, **kwargs,
        )

        # === Config ===
        self.image_shape = input_shape
        self.patch_size = patch_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    @property
    def layer_groups(self) -> dict[str, list[keras.layers.Layer]]:
        """Ordered groups of layers, bottom to top, for freezing policies."""
        groups = {"embeddings": [self.patch_embedding, self.position_embedding]}
        for i, layer in enumerate(self.transformer_layers):
            groups[f"block_{i}"] = [layer]
        groups[f"block_{len(self.transformer_layers) - 1}"].append(self.final_layer_norm)
        return groups

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_shape": self.image_shape,
            "patch_size": self.patch_size,
            "num_layers": self.num_layers,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
        })
        return config
