"""A WordPiece tokenizer that trains itself from texts and saves with the model."""

from __future__ import annotations

import json
import os
import keras
import keras_hub
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.data import files

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@keras.saving.register_keras_serializable(package="pretrainlib")
class WordPieceTokenizer(keras_hub.tokenizers.WordPieceTokenizer):
    """KerasHub's WordPiece tokenizer plus `train`, BERT special tokens and `encode`.

    Tokenization itself is KerasHub's (tf-text's fast WordPiece); this class adds what
    a pretraining workflow needs: learning a vocabulary from raw texts, fixed special
    token ids (`pad_id`, `cls_id`, `sep_id`, `mask_id`), BERT-style packing to fixed
    length, and saving to / loading from one JSON file. Inside a saved Keras model
    the vocabulary travels as an asset, as in KerasHub.

    Args:
        vocabulary: list of tokens; must contain `[PAD] [UNK] [CLS] [SEP] [MASK]`.
        lowercase: lowercase inputs before splitting.
        **kwargs: passed to `keras_hub.tokenizers.WordPieceTokenizer`.

    Examples:
        >>> import pretrainlib as pl
        >>> tok = pl.text.WordPieceTokenizer.train(
        ...     ["a small dog", "a large cat", "the dog barks"], vocab_size=40)
        >>> tok.detokenize(tok.tokenize("a dog"))
        'a dog'
        >>> out = tok.encode(["a dog", "a large cat barks"], sequence_length=8)
        >>> out["token_ids"].shape, out["padding_mask"].dtype
        (TensorShape([2, 8]), tf.int32)
    """

    def __init__(self, vocabulary=None, lowercase: bool = True, **kwargs):
        kwargs.setdefault("oov_token", "[UNK]")
        kwargs.setdefault("special_tokens", list(SPECIAL_TOKENS))
        super().__init__(vocabulary=vocabulary, lowercase=lowercase, **kwargs)

    def set_vocabulary(self, vocabulary):
        if vocabulary is not None and not isinstance(vocabulary, str):
            vocabulary = list(vocabulary)
            missing = [t for t in SPECIAL_TOKENS if t not in vocabulary]
            if missing:
                raise ValueError(
                    f"`vocabulary` must contain the special tokens {list(SPECIAL_TOKENS)}; "
                    f"missing {missing}. Train one with `WordPieceTokenizer.train(texts)`."
                )
        super().set_vocabulary(vocabulary)

    @classmethod
    def train(
        cls,
        texts,
        vocab_size: int = 8000,
        lowercase: bool = True,
        max_texts: int | None = None,
    ) -> "WordPieceTokenizer":
        """Learns a WordPiece vocabulary of at most `vocab_size` tokens from `texts`.

        `texts` is a list of strings, files (a path or glob as a `str`, a list of
        `pathlib.Path`, or a `pl.data.TextFiles` for other fields, as
        `pl.data.text_dataset` reads them) or a `tf.data.Dataset` of strings. Texts
        stream through the trainer one at a time: its memory grows with the number
        of distinct words, not with the corpus. `max_texts` caps how many are read
        (from files: chunks spread evenly over the corpus, so every part is in the
        sample); a million glosses-sized texts are plenty for an 8,000-token
        vocabulary.

        The vocabulary is learned with the Rust WordPiece trainer of HuggingFace
        `tokenizers` (a KerasHub dependency) using BERT's normalization and
        pre-splitting, which match KerasHub's tokenizer. KerasHub's own
        `compute_word_piece_vocabulary` (tf-text's pure-Python learner) took 261 s
        on the 109k WordNet glosses on 2 CPU cores; this takes seconds.
        """
        validation.positive_int("vocab_size", vocab_size)
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"`vocab_size` must exceed the {len(SPECIAL_TOKENS)} special tokens. "
                f"Received: vocab_size={vocab_size}"
            )
        stream = files.iterate_texts("texts", texts, max_texts)
        vocabulary = _learn_vocabulary(stream, vocab_size, lowercase)
        return cls(vocabulary=vocabulary, lowercase=lowercase, strip_accents=lowercase)

    # === Special tokens ===
    @property
    def vocab_size(self) -> int:
        return self.vocabulary_size()

    @property
    def pad_id(self) -> int:
        return self.token_to_id("[PAD]")

    @property
    def cls_id(self) -> int:
        return self.token_to_id("[CLS]")

    @property
    def sep_id(self) -> int:
        return self.token_to_id("[SEP]")

    @property
    def mask_id(self) -> int:
        return self.token_to_id("[MASK]")

    @property
    def special_ids(self) -> list[int]:
        return [self.token_to_id(t) for t in SPECIAL_TOKENS]

    @property
    def continuation_ids(self) -> list[int]:
        """Ids of word-continuation pieces (`##ing`): a word is a piece without the
        prefix followed by these. Whole-word masking uses them."""
        return [i for i, token in enumerate(self.get_vocabulary()) if token.startswith("##")]

    # === Encoding ===
    def encode(self, texts, sequence_length: int, pairs=None) -> dict[str, tf.Tensor]:
        """Tokenizes a batch of strings into `[CLS] ... [SEP]` rows of fixed length.

        Returns `{"token_ids": int32 [batch, sequence_length], "padding_mask": int32}`.
        With `pairs` (a second string per text) rows are `[CLS] text [SEP] pair [SEP]`,
        truncated round-robin, and `"segment_ids"` (0 for the first segment, 1 for
        the second) is added, as BERT's sentence-pair tasks take. The mask is int32
        (not bool) because `fit` under MirroredStrategy fails on bool inputs. Works
        eagerly and inside `tf.data.Dataset.map`.
        """
        validation.positive_int("sequence_length", sequence_length)
        if pairs is not None:
            packer = keras_hub.layers.MultiSegmentPacker(
                sequence_length=sequence_length, start_value=self.cls_id,
                end_value=self.sep_id, pad_value=self.pad_id, truncate="round_robin")
            token_ids, segment_ids = packer((self.tokenize(texts), self.tokenize(pairs)))
            return {
                "token_ids": tf.cast(token_ids, "int32"),
                "segment_ids": tf.cast(segment_ids, "int32"),
                "padding_mask": tf.cast(token_ids != self.pad_id, "int32"),
            }
        packer = keras_hub.layers.StartEndPacker(
            sequence_length=sequence_length,
            start_value=self.cls_id,
            end_value=self.sep_id,
            pad_value=self.pad_id,
            return_padding_mask=True,
        )
        token_ids, padding_mask = packer(self.tokenize(texts))
        return {
            "token_ids": tf.cast(token_ids, "int32"),
            "padding_mask": tf.cast(padding_mask, "int32"),
        }

    def token_ids(self, texts) -> tf.RaggedTensor:
        """The token ids of each text, without special tokens: an int32 ragged tensor
        `[num_texts, None]` (eagerly, KerasHub's `tokenize` returns Python lists)."""
        texts = validation.string_list("texts", texts)
        return (
            tf.data.Dataset.from_tensors(texts)
            .map(lambda t: tf.cast(self.tokenize(t), "int32"))
            .get_single_element()
        )

    # === Saving ===
    def save(self, path: str) -> None:
        """Writes the tokenizer (config and vocabulary) to one JSON file."""
        config = self.get_config()
        config["vocabulary"] = self.get_vocabulary()
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"class_name": "pretrainlib>WordPieceTokenizer", "config": config}, f)
        os.replace(tmp, path)  # atomic: a crash never leaves half a file at `path`

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> "WordPieceTokenizer":
        """The WordPiece tokenizer of a KerasHub preset (BERT, DistilBERT, ...), as a
        pretrainlib tokenizer: `pl.data.text_dataset` and `MaskedLM` then speak the
        preset backbone's vocabulary. A local preset directory is read offline; a
        named preset (`"bert_tiny_en_uncased"`) or URL downloads.

        Examples:
            >>> import tempfile, keras_hub, pretrainlib as pl
            >>> preset = tempfile.mkdtemp()  # a preset made here; BERT's is much larger
            >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "##s"]
            >>> keras_hub.models.BertBackbone(vocabulary_size=8, num_layers=1, num_heads=1,
            ...     hidden_dim=4, intermediate_dim=8).save_to_preset(preset)
            >>> keras_hub.models.BertTokenizer(vocabulary=vocab).save_to_preset(preset)
            >>> tok = pl.text.WordPieceTokenizer.from_preset(preset)
            >>> tok.encode(["a dogs"], sequence_length=6)["token_ids"].numpy().tolist()
            [[2, 5, 6, 7, 3, 0]]
        """
        # KerasHub refuses a preset whose tokenizer is not WordPiece, naming it.
        source = keras_hub.tokenizers.WordPieceTokenizer.from_preset(preset, **kwargs)
        return cls(vocabulary=source.get_vocabulary(), lowercase=source.lowercase,
                   strip_accents=source.strip_accents, split=source.split,
                   split_on_cjk=source.split_on_cjk,
                   suffix_indicator=source.suffix_indicator)

    @classmethod
    def load(cls, path: str) -> "WordPieceTokenizer":
        """Reads a tokenizer written by `save`."""
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if payload.get("class_name") != "pretrainlib>WordPieceTokenizer":
            raise ValueError(
                f"`path` does not hold a pretrainlib WordPieceTokenizer. Received: path={path!r}"
            )
        return cls.from_config(payload["config"])


def _learn_vocabulary(texts, vocab_size: int, lowercase: bool) -> list[str]:
    import tokenizers  # a KerasHub dependency, imported only when training

    learner = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    learner.normalizer = tokenizers.normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=lowercase,
        lowercase=lowercase,
    )
    learner.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    trainer = tokenizers.trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix="##", show_progress=False,
    )
    learner.train_from_iterator(texts, trainer=trainer)
    # The trainer breaks ties between equally frequent merges in hash-map order, which
    # changes from run to run: the same texts gave the same tokens under other ids.
    # Sorting fixes the ids of the tokens kept; which tokens make the cut at a tie can
    # still differ (rarely), so save a tokenizer to reuse its exact ids.
    learned = set(learner.get_vocab()) - set(SPECIAL_TOKENS)
    return list(SPECIAL_TOKENS) + sorted(learned)
