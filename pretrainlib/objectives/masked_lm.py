"""BERT masked language modeling with dynamic masking inside tf.data."""

from __future__ import annotations

import math

import keras
import keras_hub
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.backbones.outputs import call_inputs, sequence_features, token_inputs
from pretrainlib import randomness
from pretrainlib.objectives.objective import Objective
from pretrainlib.losses import MaskedTokenCrossentropy


@keras.saving.register_keras_serializable(package="pretrainlib")
class MaskedLM(Objective):
    """Masked language modeling (BERT): predict tokens hidden from the encoder.

    Each epoch, `mask_rate` of the real tokens in every row are selected (never
    padding or special tokens); of those, 80% become `[MASK]`, 10% a random token and
    10% stay as they are (rates configurable), inside `tf.data`, with draws that
    change every epoch and replay exactly on a rerun or resume. The head is KerasHub's
    `MaskedLMHead` with weights tied to the backbone's token embedding, so the loss
    and accuracy are computed on the selected positions only.

    Args:
        tokenizer: a `pl.text.WordPieceTokenizer`; gives `vocab_size`, the `[MASK]`
            id and the special ids never selected. Or pass those three directly.
        mask_rate: fraction of real tokens selected for prediction, in (0, 1).
        mask_token_rate: fraction of selected tokens replaced by `[MASK]`.
        random_token_rate: fraction of selected tokens replaced by a random token.
        max_predictions: predictions kept per row (default: enough for `mask_rate`
            of the row length with 30% headroom).
        whole_word: select whole words, not pieces: when `play` and `##ing` form one
            word both are masked or neither (BERT's whole-word masking), so the model
            cannot fill in a piece from its other half. `mask_rate` is then the
            fraction of words selected. Needs `tokenizer` (or `continuation_ids`).

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog", "a large cat", "the dog barks at the cat"]
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=60)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=16)
        >>> pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tok))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.text_dataset(texts, tok, sequence_length=16),
        ...                   epochs=1, verbose=0)
        >>> sorted(history.history)
        ['accuracy', 'loss']
    """

    def __init__(
        self,
        tokenizer=None,
        mask_rate: float = 0.15,
        mask_token_rate: float = 0.8,
        random_token_rate: float = 0.1,
        max_predictions: int | None = None,
        vocab_size: int | None = None,
        mask_id: int | None = None,
        special_ids: list[int] | None = None,
        tie_weights: bool = True,
        whole_word: bool = False,
        continuation_ids: list[int] | None = None,
    ):
        self.mask_rate = validation.open_unit_interval("mask_rate", mask_rate)
        self.mask_token_rate = validation.unit_interval("mask_token_rate", mask_token_rate)
        self.random_token_rate = validation.unit_interval(
            "random_token_rate", random_token_rate
        )
        if mask_token_rate + random_token_rate > 1:
            raise ValueError(
                "`mask_token_rate + random_token_rate` must be at most 1. Received: "
                f"mask_token_rate={mask_token_rate}, random_token_rate={random_token_rate}"
            )
        if tokenizer is not None:
            vocab_size, mask_id = tokenizer.vocab_size, tokenizer.mask_id
            special_ids = tokenizer.special_ids
            continuation_ids = tokenizer.continuation_ids if whole_word else None
        if vocab_size is None or mask_id is None:
            raise ValueError(
                "MaskedLM needs the vocabulary: pass `tokenizer=` (a "
                "pl.text.WordPieceTokenizer), or `vocab_size=` and `mask_id=`."
            )
        self.vocab_size = validation.positive_int("vocab_size", vocab_size)
        self.mask_id = int(mask_id)
        self.special_ids = [int(i) for i in (special_ids or [mask_id])]
        if max_predictions is not None:
            validation.positive_int("max_predictions", max_predictions)
        self.max_predictions = max_predictions
        self.tie_weights = tie_weights
        self.whole_word = bool(whole_word)
        if self.whole_word and continuation_ids is None:
            raise ValueError(
                "`whole_word=True` needs to know which pieces continue a word: pass "
                "`tokenizer=` (a pl.text.WordPieceTokenizer) or `continuation_ids=`."
            )
        self.continuation_ids = ([int(i) for i in continuation_ids]
                                 if self.whole_word else None)

    def validate_backbone(self, backbone: keras.Model) -> None:
        token_inputs(backbone, "MaskedLM", "pl.backbones.TextEncoder")
        embedding = getattr(backbone, "token_embedding", None)
        if embedding is None:
            raise ValueError(
                "MaskedLM ties its output layer to the backbone's `token_embedding`; "
                f"backbone {backbone.name!r} has none."
            )
        if embedding.input_dim != self.vocab_size:
            raise ValueError(
                "The tokenizer and the backbone disagree on the vocabulary: "
                f"tokenizer vocab_size={self.vocab_size}, backbone vocab_size="
                f"{embedding.input_dim}. Build the backbone with "
                "`vocab_size=tokenizer.vocab_size`."
            )

    # === Data ===
    def transform(self, batch):
        if isinstance(batch, tuple):  # labeled data: the labels are not used
            batch = batch[0]
        masked = self._mask(batch["token_ids"])
        inputs = {
            "token_ids": masked["token_ids"],
            "padding_mask": batch["padding_mask"],
            "mask_positions": masked["mask_positions"],
        }
        return inputs, masked["mask_ids"], masked["mask_weights"]

    def _mask(self, token_ids):
        # Our own rather than KerasHub's MaskedLMMaskGenerator, for two reasons: it
        # selects whole words when asked, and its draws come from
        # `randomness` (KerasHub's stateful ones repeat every epoch under a global
        # seed and cannot replay on resume). Units (words, or pieces) are selected
        # with probability `mask_rate`; each selected piece then becomes [MASK], a
        # random token or itself (80/10/10), as in BERT.
        token_ids = tf.convert_to_tensor(token_ids)
        shape = tf.shape(token_ids)
        special = tf.constant(self.special_ids, token_ids.dtype)
        selectable = ~tf.reduce_any(token_ids[..., None] == special, axis=-1)
        starts = selectable
        if self.whole_word:
            is_piece = tf.scatter_nd(tf.constant(self.continuation_ids, "int32")[:, None],
                                     tf.ones([len(self.continuation_ids)], "bool"),
                                     [self.vocab_size])
            starts &= ~tf.gather(is_piece, token_ids)
        word = tf.cumsum(tf.cast(starts, "int32"), axis=1)
        chosen = randomness.uniform([shape[0], shape[1] + 1]) < self.mask_rate
        selected = tf.gather(chosen, word, batch_dims=1) & selectable
        # Keep at most `max_predictions` per row (a word past the cap is cut; the
        # default cap has 30% headroom over the expected count).
        limit = self.max_predictions or max(
            1, math.ceil((token_ids.shape[1] or 128) * self.mask_rate * 1.3))
        selected &= tf.cumsum(tf.cast(selected, "int32"), axis=1) <= limit
        draw = randomness.uniform(shape)
        to_mask = selected & (draw < self.mask_token_rate)
        to_random = (selected & (draw >= self.mask_token_rate)
                     & (draw < self.mask_token_rate + self.random_token_rate))
        random_ids = randomness.uniform(shape, maxval=self.vocab_size, dtype=token_ids.dtype)
        new_ids = tf.where(to_mask, tf.cast(self.mask_id, token_ids.dtype),
                           tf.where(to_random, random_ids, token_ids))
        positions = tf.broadcast_to(tf.range(shape[1], dtype=token_ids.dtype), shape)
        positions = tf.ragged.boolean_mask(positions, selected)
        return {
            "token_ids": new_ids,
            "mask_positions": positions.to_tensor(0, shape=[None, limit]),
            "mask_ids": tf.ragged.boolean_mask(token_ids, selected).to_tensor(
                0, shape=[None, limit]),
            "mask_weights": tf.ones_like(positions, "float32").to_tensor(
                0.0, shape=[None, limit]),
        }

    # === Model ===
    def build(self, backbone: keras.Model):
        inputs, call = call_inputs(backbone)
        mask_positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        sequence = sequence_features(backbone(call), backbone)
        head = keras_hub.layers.MaskedLMHead(
            vocabulary_size=self.vocab_size,
            token_embedding=backbone.token_embedding if self.tie_weights else None,
            intermediate_activation="gelu",
            name="mlm_head",
        )
        logits = head(sequence, mask_positions=mask_positions)
        return {**inputs, "mask_positions": mask_positions}, logits

    def loss(self):
        # Average over the selected positions only, not over the zero-weight padding
        # of the `max_predictions` slots.
        return MaskedTokenCrossentropy()

    def weighted_metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def get_config(self) -> dict:
        return {
            "mask_rate": self.mask_rate,
            "mask_token_rate": self.mask_token_rate,
            "random_token_rate": self.random_token_rate,
            "max_predictions": self.max_predictions,
            "vocab_size": self.vocab_size,
            "mask_id": self.mask_id,
            "special_ids": self.special_ids,
            "tie_weights": self.tie_weights,
            "whole_word": self.whole_word,
            "continuation_ids": self.continuation_ids,
        }
