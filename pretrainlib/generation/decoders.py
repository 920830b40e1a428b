"""Causal backbones behind one decoding interface, with and without a key/value cache.

A decoder has `max_length`, `logits(token_ids)` (a full forward pass:
`[batch, length, vocab]`), `build_cache(token_ids)` (the cache after a forward pass
over the whole padded batch) and `call_with_cache(token_ids, cache, index)` (the
logits of `token_ids` placed at `index`, the cache updated), as KerasHub's causal
LMs have. `decoder_for(backbone)` picks the one for a backbone:
`pl.backbones.TextEncoder(causal=True)` runs its own layers step by step; a KerasHub
decoder backbone (GPT-2, Llama, ...) runs through its KerasHub `CausalLM` task.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat
from pretrainlib.backbones.outputs import is_causal, keras_hub_causal_lm
from pretrainlib.backbones.text_encoder import TextEncoder


def decoder_for(backbone: keras.Model):
    """The decoder that generates with `backbone`; a clear error if it cannot."""
    if not isinstance(backbone, keras.Model) or not is_causal(backbone):
        name = getattr(backbone, "name", type(backbone).__name__)
        raise ValueError(
            "Generation needs a causal backbone: pl.backbones.TextEncoder(..., causal=True) "
            "(e.g. pretrained with pl.objectives.CausalLM) or a KerasHub decoder such as "
            f"GPT2Backbone. Received: backbone={name!r} ({type(backbone).__name__}), "
            "which attends both ways.")
    if isinstance(backbone, TextEncoder):
        return TextEncoderDecoder(backbone)
    return KerasHubDecoder(backbone)


class TextEncoderDecoder:
    """Decoding with a causal `pl.backbones.TextEncoder`: its embeddings, its blocks
    (each attending to a key/value cache) and its tied output embedding.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> from pretrainlib.generation.decoders import decoder_for
        >>> encoder = pl.backbones.TextEncoder(30, num_layers=1, hidden_dim=8,
        ...                                    max_sequence_length=6, causal=True)
        >>> decoder = decoder_for(encoder)
        >>> ids = np.array([[2, 5, 7, 0, 0, 0]], "int32")
        >>> full, cache = decoder.logits(ids), decoder.build_cache(ids)
        >>> step, _ = decoder.call_with_cache(ids[:, 2:3], cache, 2)
        >>> bool(np.allclose(step[:, 0], full[:, 2], atol=1e-5))
        True
    """

    def __init__(self, backbone: TextEncoder):
        self.backbone = backbone
        self.max_length = backbone.max_sequence_length
        self.layers = len(backbone.transformer_layers)
        self.heads, self.head_dim = backbone.num_heads, backbone.hidden_dim // backbone.num_heads

    def logits(self, token_ids):
        token_ids = tf.convert_to_tensor(token_ids)
        outputs = self.backbone({"token_ids": token_ids,
                                 "padding_mask": tf.ones_like(token_ids)}, training=False)
        return self.backbone.token_embedding(outputs["sequence_output"], reverse=True)

    def build_cache(self, token_ids):
        batch, length = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        cache = tf.zeros([batch, self.layers, 2, length, self.heads, self.head_dim],
                         self.backbone.compute_dtype)
        return self.call_with_cache(token_ids, cache, 0)[1]

    def call_with_cache(self, token_ids, cache, index):
        backbone = self.backbone
        tokens = backbone.token_embedding(token_ids)
        x = tokens + backbone.position_embedding(tokens, start_index=index)
        x = backbone.embeddings_layer_norm(x)
        # A query at position index + i sees the keys at positions <= index + i.
        queries = index + tf.range(tf.shape(token_ids)[1])
        keys = tf.range(tf.shape(cache)[3])
        mask = tf.broadcast_to(keys[None, :] <= queries[:, None],
                               [tf.shape(token_ids)[0], tf.shape(queries)[0], tf.shape(keys)[0]])
        caches = []
        for i, block in enumerate(backbone.transformer_layers):
            x, layer_cache = keras_compat.transformer_encoder_step(block, x, cache[:, i], index,
                                                                   mask)
            caches.append(layer_cache)
        if backbone.final_layer_norm is not None:
            x = backbone.final_layer_norm(x)
        return backbone.token_embedding(x, reverse=True), tf.stack(caches, axis=1)


class KerasHubDecoder:
    """Decoding with a KerasHub decoder backbone through its KerasHub `CausalLM` task
    (built around the backbone, no preprocessor), whose `call_with_cache` and cache
    layout are KerasHub's own.

    Examples:
        >>> import keras_hub, numpy as np
        >>> from pretrainlib.generation.decoders import decoder_for
        >>> gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=30, num_layers=1,
        ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8)
        >>> decoder = decoder_for(gpt2)
        >>> type(decoder.task).__name__, tuple(decoder.logits(np.ones((1, 4), "int32")).shape)
        ('GPT2CausalLM', (1, 4, 30))
    """

    def __init__(self, backbone: keras.Model):
        self.backbone = backbone
        self.task = keras_hub_causal_lm(backbone)(backbone=backbone, preprocessor=None)
        self.max_length = getattr(backbone, "max_sequence_length", None)

    def logits(self, token_ids):
        token_ids = tf.convert_to_tensor(token_ids)
        return self.task({"token_ids": token_ids, "padding_mask": tf.ones_like(token_ids)},
                         training=False)

    def build_cache(self, token_ids):
        return keras_compat.keras_hub_build_cache(self.task, token_ids)

    def call_with_cache(self, token_ids, cache, index):
        logits, _, cache = self.task.call_with_cache(token_ids, cache, index)
        return logits, cache
