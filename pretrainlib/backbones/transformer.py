"""Transformer blocks shared by the text and vision encoders."""

from __future__ import annotations

import keras_hub

from pretrainlib import validation


def transformer_blocks(num_layers: int, hidden_dim: int, num_heads: int,
                       intermediate_dim: int | None, dropout: float,
                       activation: str = "gelu", normalize_first: bool = True,
                       layer_norm_epsilon: float = 1e-12, dtype=None):
    """Checks the arguments and returns `(blocks, intermediate_dim)`: `num_layers`
    KerasHub `TransformerEncoder`s named `transformer_layer_{i}`."""
    validation.positive_int("num_layers", num_layers)
    validation.positive_int("hidden_dim", hidden_dim)
    validation.positive_int("num_heads", num_heads)
    validation.unit_interval("dropout", dropout)
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. "
            f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
        )
    intermediate_dim = intermediate_dim or 4 * hidden_dim
    validation.positive_int("intermediate_dim", intermediate_dim)
    blocks = [
        keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            dropout=dropout,
            activation=activation,
            normalize_first=normalize_first,
            layer_norm_epsilon=layer_norm_epsilon,
            # Not BERT's N(0, 0.02): at small widths it makes attention and
            # feed-forward outputs ~1% of the residual stream, so masked-LM
            # training sat at the unigram loss for thousands of steps.
            kernel_initializer="glorot_uniform",
            dtype=dtype,
            name=f"transformer_layer_{i}",
        )
        for i in range(num_layers)
    ]
    return blocks, intermediate_dim
