"""A small BERT-style text encoder built from KerasHub layers."""

from __future__ import annotations

import keras
import keras_hub

from pretrainlib import validation
from pretrainlib.backbones.transformer import transformer_blocks


@keras.saving.register_keras_serializable(package="pretrainlib")
class TextEncoder(keras_hub.models.Backbone):
    """BERT-style Transformer encoder: token ids in, contextual features out.

    Built from KerasHub's `ReversibleEmbedding`, `PositionEmbedding` and
    `TransformerEncoder`, so it gets KerasHub's LoRA support, saving and dtype
    policies. Unlike BERT it has no tanh `[CLS]` pooler: that pooler receives no
    gradient from masked-LM pretraining, so a classifier on top of it starts from
    random features. Instead `pooled_output` is the mean of the final hidden states
    over real (non-padding) tokens, which MLM does train.

    Inputs: `{"token_ids": int [batch, seq], "padding_mask": int [batch, seq]}`.
    `padding_mask` is 0 on padding and 1 on real tokens; rows packed with
    `pl.data.text_dataset(pack=True, reset_attention=True)` number their documents
    1, 2, 3, ... instead, and a token then attends only to tokens of its own
    document, as if each had its own row.
    Outputs: `{"sequence_output": [batch, seq, hidden_dim],
    "pooled_output": [batch, hidden_dim]}`.

    Layer groups, bottom to top (for freezing policies): `embeddings`,
    `block_0` ... `block_{num_layers-1}`.

    Args:
        vocab_size: size of the token vocabulary (`tokenizer.vocab_size`).
        num_layers: number of Transformer blocks.
        hidden_dim: width of the hidden states.
        num_heads: attention heads per block; must divide `hidden_dim`.
        intermediate_dim: width of the feed-forward layer (default `4 * hidden_dim`).
        max_sequence_length: longest input the position embedding covers.
        dropout: dropout rate inside the encoder. Default 0: on CPU budgets
            pretraining underfits and dropout only slows it down.
        normalize_first: pre-LayerNorm blocks (as GPT-2 and most recent encoders)
            with a final LayerNorm, which train stably at the higher learning rates
            small models want; False gives BERT's post-LayerNorm blocks.
        activation: feed-forward activation.
        causal: causal self-attention (each token sees only itself and earlier
            tokens), as GPT decoders have; needed by `pl.objectives.CausalLM`.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(vocab_size=100, num_layers=2, hidden_dim=32)
        >>> out = encoder({"token_ids": np.ones((2, 8), "int32"),
        ...                "padding_mask": np.ones((2, 8), "int32")})
        >>> tuple(out["pooled_output"].shape), list(encoder.layer_groups)
        ((2, 32), ['embeddings', 'block_0', 'block_1'])
    """

    # `padding_mask` may number the documents of a packed row (see DocumentMask).
    reads_document_ids = True

    def __init__(
        self,
        vocab_size: int,
        num_layers: int = 2,
        hidden_dim: int = 128,
        num_heads: int = 2,
        intermediate_dim: int | None = None,
        max_sequence_length: int = 128,
        dropout: float = 0.0,
        normalize_first: bool = True,
        activation: str = "gelu",
        causal: bool = False,
        dtype=None,
        **kwargs,
    ):
        validation.positive_int("vocab_size", vocab_size)
        validation.positive_int("max_sequence_length", max_sequence_length)
        self.transformer_layers, intermediate_dim = transformer_blocks(
            num_layers, hidden_dim, num_heads, intermediate_dim, dropout, activation,
            normalize_first, layer_norm_epsilon=1e-12, dtype=dtype)
        init = keras.initializers.TruncatedNormal(stddev=0.02)

        # === Layers ===
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, embeddings_initializer=init, dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_sequence_length, initializer=init, dtype=dtype,
            name="position_embedding",
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-12, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.final_layer_norm = (
            keras.layers.LayerNormalization(epsilon=1e-12, dtype=dtype, name="final_layer_norm")
            if normalize_first else None
        )
        self.mean_pool = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        mask = keras.ops.cast(padding_mask, "bool")
        tokens = self.token_embedding(token_ids)
        x = tokens + self.position_embedding(tokens)
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        attention_mask = DocumentMask(causal=causal, name="attention_mask")(padding_mask)
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=mask, attention_mask=attention_mask)
        if self.final_layer_norm is not None:
            x = self.final_layer_norm(x)
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": self.mean_pool(x, mask=mask)},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.normalize_first = normalize_first
        self.activation = activation
        self.causal = causal

    @property
    def layer_groups(self) -> dict[str, list[keras.layers.Layer]]:
        """Ordered groups of layers, bottom to top, for freezing policies."""
        groups = {
            "embeddings": [
                self.token_embedding, self.position_embedding, self.embeddings_layer_norm
            ]
        }
        for i, layer in enumerate(self.transformer_layers):
            groups[f"block_{i}"] = [layer]
        if self.final_layer_norm is not None:  # normalizes the top block's output
            groups[f"block_{len(self.transformer_layers) - 1}"].append(self.final_layer_norm)
        return groups

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
                "dropout": self.dropout,
                "normalize_first": self.normalize_first,
                "activation": self.activation,
                "causal": self.causal,
            }
        )
        return config



@keras.saving.register_keras_serializable(package="pretrainlib")
class DocumentMask(keras.layers.Layer):
    """Padding mask `[batch, seq]` -> attention mask `[batch, seq, seq]`.

    True where a query may attend to a key: both in the same document (equal
    nonzero `padding_mask` values; plain 0/1 masks make one document per row) and,
    if `causal`, the key at or before the query.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.backbones.text_encoder import DocumentMask
        >>> DocumentMask()(np.array([[1, 1, 2, 0]]))[0].numpy().astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    """

    def __init__(self, causal: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.causal = causal

    def call(self, padding_mask):
        keys = keras.ops.expand_dims(padding_mask, 1)
        allowed = (keras.ops.expand_dims(padding_mask, 2) == keys) & (keys > 0)
        if self.causal:
            positions = keras.ops.arange(keras.ops.shape(padding_mask)[1], dtype="int32")
            allowed &= keras.ops.expand_dims(positions, 1) >= keras.ops.expand_dims(positions, 0)
        return allowed

    def compute_output_spec(self, padding_mask):
        batch, length = padding_mask.shape
        return keras.KerasTensor((batch, length, length), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "causal": self.causal}
