"""Cloze prompts: a template with one `[MASK]` and one word per class (a verbalizer)."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.text.preprocessor import TextPreprocessor

MASK, TEXT = "[MASK]", "{text}"


@keras.saving.register_keras_serializable(package="pretrainlib")
class Prompt(keras.layers.Layer):
    """Turns a classification into filling a blank, for a masked-LM head (PET).

    Each text is written into `template`, whose `[MASK]` the masked-LM head fills;
    the class is the verbalizer word it scores highest
    (`pl.heads.ClozeClassifier.from_masked_lm`). With no labels that is zero-shot
    classification; fine-tuning the same head and backbone on a few labels starts
    from it (few-shot, PET-style).

    A Prompt encodes as a tokenizer does (`encode(texts, sequence_length)`), so it
    goes wherever a tokenizer goes: `pl.data.text_dataset(texts, prompt, labels)`,
    `pl.text.TextPreprocessor(prompt, sequence_length)` (`prompt.preprocessor(n)`).
    Rows are `[CLS] before [MASK] between text after [SEP]`; a long text is cut at
    its end, so the `[MASK]` stays at one position (`mask_position`). That is why
    `[MASK]` must come before `{text}` in the template.

    Args:
        tokenizer: a `pl.text.WordPieceTokenizer` (the one the backbone was
            pretrained with).
        template: a string with `[MASK]` once and then `{text}` once, e.g.
            `"a [MASK] : {text}"`.
        verbalizer: one word per class, in class-id order (a list), or
            `{class name: word}` (its order is the class ids'). Each word must be
            one word piece of the tokenizer's vocabulary.

    Examples:
        >>> import pretrainlib as pl
        >>> tok = pl.text.WordPieceTokenizer.train(
        ...     ["a dog is an animal", "a hammer is a tool"] * 4, vocab_size=60)
        >>> prompt = pl.text.Prompt(tok, "a [MASK] : {text}", {"animal": "animal",
        ...                                                  "tool": "tool"})
        >>> prompt.mask_position, prompt.class_names
        (2, ['animal', 'tool'])
        >>> ids = prompt.encode(["a dog"], sequence_length=8)["token_ids"][0]
        >>> int(ids[prompt.mask_position]) == tok.mask_id
        True
    """

    def __init__(self, tokenizer, template: str = "a [MASK] : {text}", verbalizer=None,
                 ids: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if not (hasattr(tokenizer, "tokenize") and hasattr(tokenizer, "token_ids")):
            raise TypeError("`tokenizer` must be a pl.text.WordPieceTokenizer. Received: "
                            f"tokenizer of type {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.template = _check_template(template)
        self.verbalizer = _check_verbalizer(verbalizer)
        # A saved Prompt keeps its ids: a loaded tokenizer gets its vocabulary only
        # after the layers are built.
        self._ids = dict(ids) if ids is not None else self._token_ids()
        self._before, self._after = list(self._ids["before"]), list(self._ids["after"])
        self.word_ids = list(self._ids["words"])

    def _token_ids(self) -> dict:
        tokenizer = self.tokenizer
        before, rest = self.template.split(MASK)
        between, after = rest.split(TEXT)
        pieces = lambda s: _ids(tokenizer, s) if s.strip() else []  # noqa: E731
        words = (list(self.verbalizer.values()) if isinstance(self.verbalizer, dict)
                 else list(self.verbalizer))
        word_ids = [_word_id(tokenizer, word) for word in words]
        if len(set(word_ids)) < len(word_ids):
            raise ValueError(f"`verbalizer` gives two classes the same word: {words}. "
                             "Give each class its own word.")
        return {"before": [tokenizer.cls_id, *pieces(before), tokenizer.mask_id,
                           *pieces(between)],
                "after": [*pieces(after), tokenizer.sep_id],
                "mask_position": 1 + len(pieces(before)), "words": word_ids,
                "pad": tokenizer.pad_id}

    @property
    def mask_position(self) -> int:
        """The position of `[MASK]` in every row."""
        return self._ids["mask_position"]

    @property
    def class_names(self) -> list[str] | None:
        return list(self.verbalizer) if isinstance(self.verbalizer, dict) else None

    @property
    def num_classes(self) -> int:
        return len(self.word_ids)

    # What a tokenizer offers, so a Prompt goes where one goes.
    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def vocabulary(self):
        return self.tokenizer.vocabulary

    @property
    def pad_id(self) -> int:
        return self._ids["pad"]

    @property
    def mask_id(self) -> int:
        return self.tokenizer.mask_id

    @property
    def special_ids(self) -> list[int]:
        return self.tokenizer.special_ids

    def tokenize(self, texts):
        return self.tokenizer.tokenize(texts)

    def encode(self, texts, sequence_length: int, pairs=None) -> dict[str, tf.Tensor]:
        """`{"token_ids", "padding_mask"}` rows of `sequence_length`, each text written
        into the template (and cut at its end to fit). Works eagerly and in tf.data."""
        if pairs is not None:
            raise ValueError("A Prompt writes one text per row: `pairs` is not supported.")
        validation.positive_int("sequence_length", sequence_length)
        room = sequence_length - len(self._before) - len(self._after)
        if room < 1:
            raise ValueError(
                f"`sequence_length={sequence_length}` leaves no room for the text: the "
                f"template alone takes {len(self._before) + len(self._after)} tokens.")
        if isinstance(texts, (list, tuple, str)):
            texts = tf.constant(texts)
        words = self.tokenizer.tokenize(texts)
        if not isinstance(words, tf.RaggedTensor):  # eager: lists of ids
            words = tf.ragged.constant(words, dtype="int32", ragged_rank=1)
        words = tf.cast(words, "int32")[:, :room]
        rows = words.nrows()
        before = tf.RaggedTensor.from_tensor(tf.tile(tf.constant([self._before], "int32"),
                                                     [rows, 1]))
        after = tf.RaggedTensor.from_tensor(tf.tile(tf.constant([self._after], "int32"),
                                                    [rows, 1]))
        pad = self.tokenizer.pad_id
        token_ids = tf.concat([before, words, after], axis=1).to_tensor(
            pad, shape=[None, sequence_length])
        return {"token_ids": token_ids,
                "padding_mask": tf.cast(token_ids != pad, "int32")}

    def preprocessor(self, sequence_length: int = 128):
        """A `pl.text.TextPreprocessor` that writes raw texts into this prompt."""
        return TextPreprocessor(self, sequence_length)

    def build(self, input_shape=None):
        self.built = True  # no weights: the vocabulary is the tokenizer's

    def call(self, texts):
        raise TypeError("Call `prompt.encode(texts, sequence_length)`, or use "
                        "`prompt.preprocessor(sequence_length)`.")

    def get_config(self):
        return {**super().get_config(),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "template": self.template, "verbalizer": self.verbalizer, "ids": self._ids}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)


def _ids(tokenizer, text: str) -> list[int]:
    return [int(i) for i in tokenizer.token_ids([text])[0].numpy()]


def _check_template(template) -> str:
    if not isinstance(template, str) or template.count(MASK) != 1 or (
            template.count(TEXT) != 1):
        raise ValueError("`template` must hold `[MASK]` once and `{text}` once (e.g. "
                         f"'a [MASK] : {{text}}'). Received: template={template!r}")
    if template.index(MASK) > template.index(TEXT):
        raise ValueError(
            "`template` must put `[MASK]` before `{text}`: a long text is cut at its end, "
            "which keeps the mask at one position. Received: "
            f"template={template!r}; try e.g. '[MASK] : {{text}}'.")
    return template


def _check_verbalizer(verbalizer):
    if isinstance(verbalizer, dict):
        words = list(verbalizer.values())
        verbalizer = {str(k): v for k, v in verbalizer.items()}
    elif isinstance(verbalizer, (list, tuple)):
        words = verbalizer = list(verbalizer)
    else:
        raise ValueError("`verbalizer` must give one word per class: a list in class-id "
                         "order or a dict {class name: word}. Received: "
                         f"verbalizer={verbalizer!r}")
    if len(words) < 2 or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError("`verbalizer` must give a non-empty word to each of at least two "
                         f"classes. Received: verbalizer={verbalizer!r}")
    return verbalizer


def _word_id(tokenizer, word: str) -> int:
    pieces = _ids(tokenizer, word)
    unknown = tokenizer.token_to_id("[UNK]")
    if len(pieces) != 1 or pieces[0] == unknown:
        shown = [tokenizer.id_to_token(i) for i in pieces]
        raise ValueError(
            f"`verbalizer` word {word!r} is {len(pieces)} word pieces {shown} of this "
            "tokenizer, not one: the masked-LM head fills one piece per [MASK]. Pick a "
            "word in the vocabulary (`tok.tokenize(word)` shows its pieces).")
    return pieces[0]
