"""Raw text in, the token ids a text backbone takes out (KerasHub's Preprocessor idea)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.data.text import text_dataset


@keras.saving.register_keras_serializable(package="pretrainlib")
class TextPreprocessor(keras.layers.Layer):
    """Tokenizes raw strings into `{"token_ids", "padding_mask"}` rows of a fixed length.

    Give it to a model (`pl.FineTuner(..., preprocessor=...)`) and the model takes
    raw texts: `ft.fit(texts, labels)`, `ft.evaluate(texts, labels)`,
    `ft.predict(["some text"])`; it is saved with the model, the tokenizer's
    vocabulary included. Tokenization runs in tf.data, once per dataset (see
    `pl.data.text_dataset`, which stays the tool for pipelines of your own).

    Args:
        tokenizer: a `pl.text.WordPieceTokenizer`.
        sequence_length: tokens per row, `[CLS]` and `[SEP]` included; at most the
            backbone's `max_sequence_length`.
        pack: for unlabeled texts (a Pretrainer's), pack documents into full rows
            (`pl.data.text_dataset(..., pack=True)`); labeled texts are never packed.

    Examples:
        >>> import pretrainlib as pl
        >>> tok = pl.text.WordPieceTokenizer.train(["a small dog", "a large cat"],
        ...                                        vocab_size=30)
        >>> pre = pl.text.TextPreprocessor(tok, sequence_length=6)
        >>> pre(["a small cat"])["token_ids"].shape
        TensorShape([1, 6])
    """

    def __init__(self, tokenizer, sequence_length: int = 128, pack: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "tokenize")):
            raise TypeError("`tokenizer` must be a pl.text.WordPieceTokenizer. Received: "
                            f"tokenizer of type {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.sequence_length = validation.positive_int("sequence_length", sequence_length)
        self.pack = bool(pack)

    def __call__(self, texts, *args, **kwargs):
        if isinstance(texts, (list, tuple, str)):  # Keras layers take tensors only
            texts = tf.constant(texts)
        return super().__call__(texts, *args, **kwargs)

    def build(self, input_shape=None):
        # No weights: the tokenizer's vocabulary is all the state (Keras warns about
        # a layer without `build` whose sublayer, the tokenizer, looks unbuilt).
        self.built = True

    def call(self, texts):
        return self.tokenizer.encode(texts, self.sequence_length)

    def takes(self, x) -> bool:
        """Whether `x` is raw text this preprocessor turns into model inputs."""
        if isinstance(x, (list, tuple)):
            return bool(x) and all(isinstance(t, str) for t in x)
        return isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype.kind in "USO"

    def dataset(self, texts, labels=None, sample_weight=None, batch_size: int = 32,
                shuffle: bool = True, seed: int | None = None) -> tf.data.Dataset:
        """`texts` (and `labels`) as the batched dataset a model trains on."""
        if sample_weight is not None:
            raise ValueError("`sample_weight` with raw texts is not supported: build a "
                             "dataset of (inputs, labels, weights) with pl.data.text_dataset.")
        return text_dataset([str(t) for t in texts], self.tokenizer, labels=labels,
                            batch_size=batch_size, sequence_length=self.sequence_length,
                            pack=self.pack and labels is None, shuffle=shuffle, seed=seed)

    def check_backbone(self, backbone: keras.Model) -> None:
        """Raises if `backbone` cannot take what this preprocessor makes."""
        limit = getattr(backbone, "max_sequence_length", None)
        if limit and self.sequence_length > limit:
            raise ValueError(
                f"`sequence_length={self.sequence_length}` is longer than backbone "
                f"{backbone.name!r} takes (max_sequence_length={limit}). Pass "
                f"TextPreprocessor(tokenizer, sequence_length={limit}) or less.")
        embedding = getattr(backbone, "token_embedding", None)
        vocabulary = self.tokenizer.vocabulary if hasattr(self.tokenizer, "vocabulary") else 0
        if embedding is not None and vocabulary and (
                embedding.input_dim != self.tokenizer.vocab_size):
            raise ValueError(
                f"The tokenizer has vocab_size={self.tokenizer.vocab_size}, but backbone "
                f"{backbone.name!r} embeds {embedding.input_dim} tokens. Use the tokenizer "
                "the backbone was built (and pretrained) for.")

    def get_config(self):
        return {**super().get_config(),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "sequence_length": self.sequence_length, "pack": self.pack}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
