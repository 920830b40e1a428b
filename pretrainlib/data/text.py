"""tf.data pipelines for text: tokenize, pad or pack, shuffle, batch, prefetch."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from pretrainlib import epochs, validation

AUTOTUNE = tf.data.AUTOTUNE
_TOKENIZE_CHUNK = 1024


def text_dataset(
    texts: Sequence[str],
    tokenizer,
    labels: Sequence[int] | None = None,
    batch_size: int = 32,
    sequence_length: int = 128,
    pack: bool = False,
    reset_attention: bool = False,
    shuffle: bool = True,
    seed: int | None = None,
    pairs: Sequence[str] | None = None,
) -> tf.data.Dataset:
    """Builds a batched `tf.data.Dataset` of token ids from raw texts.

    Each element is `{"token_ids", "padding_mask"}` (int32, `[batch, sequence_length]`),
    paired with `labels` when they are given. Tokenization runs once, vectorized, and
    is kept; every epoch is reshuffled, its order a function of `seed` and the
    epoch number alone (the same with or without checkpoints, on a resume and under
    a distribution strategy; without `seed`, one is drawn from Python's `random`).

    With `pack=True` (for pretraining, labels not allowed) documents are
    concatenated, each followed by `[SEP]`, and cut into full rows that start with
    `[CLS]`, as RoBERTa's "full sentences" packing does: no compute is spent on
    padding, which matters for short texts (a WordNet gloss fills about 11% of a
    128-token row). Attention may cross document boundaries inside a row unless
    `reset_attention=True`: then `padding_mask` numbers the documents of each row
    1, 2, 3, ... and `pl.backbones.TextEncoder` lets each token attend only to its
    own document, so packing changes nothing but the padding saved. The
    document order is reshuffled, so rows are re-packed, every epoch; the number
    of rows per epoch is fixed, so the dataset has a known length.

    Args:
        texts: list of strings.
        tokenizer: a `pl.text.WordPieceTokenizer`.
        labels: optional integer class ids, one per text (floats: regression targets).
        batch_size: rows per batch.
        sequence_length: tokens per row, including `[CLS]` and `[SEP]`.
        pack: pack documents into full rows (pretraining only).
        reset_attention: with `pack=True`, keep attention inside each document.
        shuffle: reshuffle every epoch.
        seed: seed for shuffling.
        pairs: optional second text per text (sentence-pair tasks: entailment,
            paraphrase, question + passage): rows become `[CLS] text [SEP] pair
            [SEP]` and elements gain `"segment_ids"`; fine-tune them with a backbone
            that takes segment ids (KerasHub's BERT) and `FineTuner(..., pairs=True)`.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog", "a large cat", "the dog barks"]
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> ds = pl.data.text_dataset(texts, tok, labels=[0, 1, 0], batch_size=2,
        ...                           sequence_length=8)
        >>> x, y = next(iter(ds))
        >>> x["token_ids"].shape, y.shape
        (TensorShape([2, 8]), TensorShape([2]))
    """
    texts = validation.string_list("texts", texts)
    validation.positive_int("batch_size", batch_size)
    validation.positive_int("sequence_length", sequence_length)
    if sequence_length < 3:
        raise ValueError(
            "`sequence_length` must be at least 3 ([CLS], one token, [SEP]). "
            f"Received: sequence_length={sequence_length}"
        )
    if labels is not None:
        if pack:
            raise ValueError(
                "`pack=True` mixes documents in one row, so it cannot carry per-text "
                "`labels`. Use pack=False for labeled data."
            )
        labels = validation.class_labels("labels", labels, len(texts), "text")
    if pairs is not None:
        if pack:
            raise ValueError("`pairs` keeps two texts together in a row; it needs pack=False.")
        pairs = validation.string_list("pairs", pairs)
        if len(pairs) != len(texts):
            raise ValueError(
                f"`pairs` must hold one second text per text ({len(texts)}). "
                f"Received: {len(pairs)} pairs"
            )
    if reset_attention and not pack:
        raise ValueError(
            "`reset_attention=True` separates packed documents; it needs `pack=True`."
        )
    if pack:
        return _packed_dataset(texts, tokenizer, batch_size, sequence_length, shuffle, seed,
                               reset_attention)

    if pairs is None:
        slices, encode = texts, lambda t: tokenizer.encode(t, sequence_length)
    else:
        slices = (texts, pairs)
        encode = lambda t, p: tokenizer.encode(t, sequence_length, pairs=p)  # noqa: E731
    # Tokenized once, up front (vectorized, in parallel chunks); each epoch is then
    # a permutation of the rows, a function of (seed, epoch) alone.
    chunks = list(tf.data.Dataset.from_tensor_slices(slices).batch(_TOKENIZE_CHUNK)
                  .map(encode, num_parallel_calls=AUTOTUNE))
    encoded = {key: tf.concat([chunk[key] for chunk in chunks], axis=0) for key in chunks[0]}
    columns = (encoded,) if labels is None else (encoded, labels)
    return epochs.Examples(columns, batch_size, shuffle=shuffle, seed=seed).dataset()


def _packed_dataset(texts, tokenizer, batch_size, sequence_length, shuffle, seed,
                    reset_attention=False):
    # Tokenize once; keep documents as rows of a ragged tensor so each epoch can
    # reshuffle document order before packing.
    docs = tokenizer.token_ids(texts)
    sep = tf.fill([docs.nrows(), 1], tf.constant(tokenizer.sep_id, "int32"))
    docs = tf.concat([docs, tf.RaggedTensor.from_tensor(sep)], axis=1)
    body = sequence_length - 1  # every row starts with [CLS]
    num_rows = int(docs.flat_values.shape[0]) // body
    num_batches = num_rows // batch_size
    if num_batches == 0:
        raise ValueError(
            f"`texts` hold {int(docs.flat_values.shape[0])} tokens, fewer than one packed "
            f"batch of {batch_size} rows x {sequence_length} tokens. Pass more texts or a "
            "smaller `batch_size` / `sequence_length`."
        )
    cls_id = tokenizer.cls_id

    def pack_epoch(key, first_batch):
        order = tf.range(docs.nrows())
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, key)
        stream = tf.gather(docs, order).flat_values[: num_rows * body]
        rows = tf.reshape(stream, [num_rows, body])[first_batch * batch_size:
                                                    num_batches * batch_size]
        rows = tf.concat([tf.fill([tf.shape(rows)[0], 1], cls_id), rows], axis=1)
        if not reset_attention:
            mask = tf.ones_like(rows)
        else:  # document number within the row: 1 + the [SEP]s before each token
            ends = tf.cast(rows == tokenizer.sep_id, "int32")
            mask = 1 + tf.cumsum(ends, axis=1, exclusive=True)
        return tf.data.Dataset.from_tensor_slices(
            {"token_ids": rows, "padding_mask": mask}).batch(batch_size, drop_remainder=True)

    # Each epoch packs its own document order, keyed by (seed, epoch).
    return epochs.EpochSource(pack_epoch, num_batches, seed).dataset()
