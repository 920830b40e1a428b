"""Classification by filling a blank: a masked-LM head restricted to one word per class."""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib import keras_compat, validation
from pretrainlib.heads.classifier import Classifier


@keras.saving.register_keras_serializable(package="pretrainlib")
class ClozeClassifier(Classifier):
    """The masked-LM head's scores of the verbalizer words at the `[MASK]` position.

    It reads the backbone's `sequence_output` at `mask_position`, applies the
    masked-LM head's transform (a dense layer with its activation, then layer
    normalization) and scores one word per class: its logits are the masked-LM
    logits of those words. Built `from_masked_lm` of a pretrained masked-LM model
    with a `pl.text.Prompt`, it classifies with no labels at all (zero-shot); as the
    head of a FineTuner it fine-tunes from there (few-shot, as PET does). Built
    directly, its weights start random: a classifier on the `[MASK]` position.

    Args:
        num_classes: number of classes (verbalizer words).
        mask_position: where `[MASK]` sits in every row (`prompt.mask_position`).
        feature: the backbone output to read, a sequence `[batch, positions, width]`.
        dropout: dropout rate before the transform.
        activation: the transform's activation (the masked-LM head's).
        layer_norm_epsilon: the transform's layer normalization epsilon.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a dog is an animal", "a cat is an animal", "a saw is a tool",
        ...          "a hammer is a tool"] * 8
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=50)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1,
        ...                                    hidden_dim=16, max_sequence_length=12)
        >>> pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tok))
        >>> pre.compile(learning_rate=1e-3)
        >>> prompt = pl.text.Prompt(tok, "a [MASK] : {text}", ["animal", "tool"])
        >>> head = pl.heads.ClozeClassifier.from_masked_lm(pre, prompt)
        >>> ft = pl.FineTuner(encoder, head, preprocessor=prompt.preprocessor(12))
        >>> ft.predict(["a dog"], verbose=0).shape  # zero-shot: no fit needed
        (1, 2)
    """

    def __init__(self, num_classes: int, mask_position: int = 1,
                 feature: str = "sequence_output", dropout: float = 0.0,
                 activation: str = "gelu", layer_norm_epsilon: float = 1e-5, **kwargs):
        kwargs.pop("hidden_dim", None)  # always the backbone's width
        super().__init__(num_classes, feature=feature, dropout=dropout, **kwargs)
        self.mask_position = validation.non_negative_int("mask_position", mask_position)
        self.activation = activation
        self.layer_norm_epsilon = validation.positive_float("layer_norm_epsilon",
                                                            layer_norm_epsilon)
        self.norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm",
                                                    dtype=self.dtype_policy)

    @classmethod
    def from_masked_lm(cls, model: keras.Model, prompt, **kwargs) -> "ClozeClassifier":
        """The head that scores `prompt`'s verbalizer words as the masked-LM head of
        `model` (a `pl.Pretrainer` with `pl.objectives.MaskedLM`, or any model
        holding a KerasHub `MaskedLMHead`) does: its transform and, for each word, its
        output embedding and bias, copied."""
        mlm = keras_compat.masked_lm_head(model)
        dense, norm, words, bias = keras_compat.masked_lm_parts(mlm)
        head = cls(prompt.num_classes, mask_position=prompt.mask_position,
                   activation=keras.activations.serialize(dense.activation),
                   layer_norm_epsilon=norm.epsilon, **kwargs)
        width = dense.kernel.shape[0]
        head.build({head.feature: (None, None, width)})
        head.hidden.set_weights([np.asarray(w) for w in dense.weights])
        head.norm.set_weights([np.asarray(w) for w in norm.weights])
        ids = list(prompt.word_ids)
        head.logits.set_weights([np.asarray(words)[:, ids], np.asarray(bias)[ids]])
        return head

    def _pool(self, x):
        return x[:, self.mask_position]

    def _pooled_shape(self, input_shape):
        shape = tuple(self._select(input_shape))
        if len(shape) != 3:
            raise ValueError(
                f"ClozeClassifier reads a sequence [batch, positions, width] at its "
                f"mask position; `{self.feature}` has shape {shape}. Pass "
                "feature='sequence_output' (a pl.backbones.TextEncoder's).")
        return (shape[0], shape[-1])

    def build(self, input_shape):
        shape = self._pooled_shape(input_shape)
        if self.hidden is None:
            self.hidden = keras.layers.Dense(shape[-1], activation=self.activation,
                                             name="hidden", dtype=self.dtype_policy)
        self.hidden.build(shape)
        self.norm.build(shape)
        self.logits.build(shape)

    def call(self, features, training=None):
        x = self._pool(self._select(features))
        x = self.norm(self.hidden(self.dropout_layer(x, training=training)))
        return self.logits(x)

    def get_config(self):
        config = super().get_config()
        config.pop("hidden_dim", None)
        return {**config, "mask_position": self.mask_position, "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon}
