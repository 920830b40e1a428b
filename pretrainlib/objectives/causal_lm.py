"""Causal (next-token) language modeling, GPT-style."""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib.backbones.outputs import call_inputs, check_causal_lm, sequence_features
from pretrainlib.heads.causal_lm_head import next_token_metrics
from pretrainlib.objectives.objective import Objective
from pretrainlib.losses import MaskedTokenCrossentropy, next_token_targets


@keras.saving.register_keras_serializable(package="pretrainlib")
class CausalLM(Objective):
    """Next-token prediction: every position predicts the token after it.

    Needs a backbone with causal self-attention, so no position sees its target:
    `pl.backbones.TextEncoder(..., causal=True)` or a KerasHub decoder (GPT-2,
    Llama, ... built directly or loaded with `pl.hub.load_backbone`).
    The transform shifts each row by one token (inputs are tokens `0..n-2`,
    targets `1..n-1`); padding targets get weight 0. The output layer is the
    backbone's token embedding used in reverse (tied weights), so the objective
    adds no parameters. Metrics: next-token `accuracy` and `perplexity`
    (KerasHub's, on real tokens only). Packed rows (`text_dataset(pack=True)`) are
    the efficient input for pretraining; rows of (prompt, target) pairs
    (`pl.data.prompt_dataset`) fine-tune it to write targets, the loss and metrics
    counting the target's tokens only.

    Args:
        tie_weights: reuse the token embedding as the output layer (default); False
            adds a dense output layer, dropped after pretraining.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog barks", "a large cat sleeps", "the dog sees the cat"] * 8
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=60)
        >>> decoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=16, causal=True)
        >>> pre = pl.Pretrainer(decoder, pl.objectives.CausalLM())
        >>> pre.compile(learning_rate=3e-3)
        >>> history = pre.fit(pl.data.text_dataset(texts, tok, batch_size=4, sequence_length=16,
        ...                                        pack=True), epochs=1, verbose=0)
        >>> sorted(history.history)
        ['accuracy', 'loss', 'perplexity']
        >>> text = pl.objectives.CausalLM.generate(pre, tok, "a small", max_new_tokens=3)
        >>> text.startswith("a small")
        True
    """

    def __init__(self, tie_weights: bool = True):
        self.tie_weights = bool(tie_weights)

    def validate_backbone(self, backbone: keras.Model) -> None:
        check_causal_lm(backbone, "CausalLM", tied=self.tie_weights)

    # === Data ===
    def transform(self, batch):
        return next_token_targets(batch)

    # === Model ===
    def build(self, backbone: keras.Model):
        inputs, call = call_inputs(backbone)
        sequence = sequence_features(backbone(call), backbone)
        if self.tie_weights:
            logits = backbone.token_embedding(sequence, reverse=True)
        else:
            config = backbone.get_config()
            vocab_size = config.get("vocab_size", config.get("vocabulary_size"))
            logits = keras.layers.Dense(vocab_size, name="lm_head")(sequence)
        return inputs, logits

    def loss(self):
        return MaskedTokenCrossentropy()

    def weighted_metrics(self) -> list:
        return next_token_metrics()

    def get_config(self) -> dict:
        return {"tie_weights": self.tie_weights}

    # === Sanity check ===
    @staticmethod
    def generate(model: keras.Model, tokenizer, prompt: str, max_new_tokens: int = 20) -> str:
        """Greedy continuation of `prompt` by a CausalLM `Pretrainer` (a sanity check
        of what it learned; `pl.generation.Generator` is the batched, cached sampler).

        Stops at `[SEP]` or after `max_new_tokens` tokens.
        """
        ids = list(np.asarray(tokenizer.token_ids([prompt])[0]))
        ids = [tokenizer.cls_id] + ids
        for _ in range(max_new_tokens):
            tokens = np.asarray([ids], "int32")
            logits = model({"token_ids": tokens, "padding_mask": np.ones_like(tokens)},
                           training=False)
            next_id = int(np.argmax(np.asarray(logits)[0, -1]))
            if next_id == tokenizer.sep_id:
                break
            ids.append(next_id)
        text = tokenizer.detokenize(np.asarray(ids[1:], "int32"))
        text = text.numpy() if hasattr(text, "numpy") else text
        return text.decode("utf-8") if isinstance(text, bytes) else str(text)
