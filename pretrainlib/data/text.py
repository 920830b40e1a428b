"""tf.data pipelines for text: tokenize, pad or pack, shuffle, batch, prefetch."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from pretrainlib import epochs, validation
from pretrainlib.data import files, labels as label_names, packing

AUTOTUNE = tf.data.AUTOTUNE
_TOKENIZE_CHUNK = 1024


def text_dataset(
    texts,
    tokenizer,
    labels=None,
    batch_size: int = 32,
    sequence_length: int = 128,
    pack: bool = False,
    reset_attention: bool = False,
    shuffle: bool = True,
    seed: int | None = None,
    pairs: Sequence[str] | None = None,
    *,
    format: str | None = None,
    text_field: str | None = None,
    text_column: str | int | None = None,
    label_field: str | None = None,
    label_column: str | int | None = None,
    document: str = "line",
    label_vocabulary: Sequence[str] | None = None,
    buffer_size: int = files.DEFAULT_BUFFER,
) -> tf.data.Dataset:
    """Builds a batched `tf.data.Dataset` of token ids from texts, files or a stream.

    Each element is `{"token_ids", "padding_mask"}` (int32, `[batch, sequence_length]`),
    paired with labels when there are some. `texts` is one of:

    - **a list of strings**, tokenized once, vectorized, and kept;
    - **files**: a path or glob as a `str` (`"corpus/*.jsonl"`), a directory, or a
      list of `pathlib.Path`: plain text (a document per non-empty line, or per
      file with `document="file"`), JSON Lines (`text_field`, `label_field`),
      CSV/TSV with a header row (`text_column`, `label_column`) or TFRecord of
      `tf.train.Example` (`text_field`, `label_field`). Each file is read once to
      index it (every record checked: an error names the file and line), the
      index is cached, and batches stream from disk, tokenized as they go: memory
      holds `buffer_size` records, not the corpus;
    - **a `tf.data.Dataset`** of strings, or of `(string, label)` pairs, streamed
      (shuffled in a buffer of `buffer_size` when `shuffle`).

    Lists and files are reshuffled every epoch, the order a function of `seed` and
    the epoch number alone (the same with or without checkpoints, on a resume and
    under a distribution strategy; without `seed`, one is drawn from Python's
    `random`). Files are shuffled as a bounded buffer does: chunks of records in a
    permuted order, then windows of `buffer_size` records permuted; a resumed run
    starts at its batch by reading one window, wherever it is.

    Labels may be class ids, float regression targets, or class names: names
    become ids through a label vocabulary, `label_vocabulary` (names in id order)
    or, by default, the sorted names found. The dataset's `class_names` holds it;
    a `FineTuner` trained on it keeps it, saved with the model, and the
    `Evaluator` names classes with it.

    With `pack=True` (for pretraining, labels not allowed) documents are
    concatenated, each followed by `[SEP]`, and cut into full rows that start with
    `[CLS]`, as RoBERTa's "full sentences" packing does: no compute is spent on
    padding, which matters for short texts (a WordNet gloss fills about 11% of a
    128-token row). Attention may cross document boundaries inside a row unless
    `reset_attention=True`: then `padding_mask` numbers the documents of each row
    1, 2, 3, ... and `pl.backbones.TextEncoder` lets each token attend only to its
    own document, so packing changes nothing but the padding saved. For a list of
    texts the document order is reshuffled, so rows are re-packed, every epoch;
    the number of rows per epoch is fixed, so the dataset has a known length. A
    stream is packed as it goes (tokens left over from one window of documents
    start the next), and the same documents in the same order give the same rows.

    Args:
        texts: a list of strings, files (see above), or a `tf.data.Dataset`.
        tokenizer: a `pl.text.WordPieceTokenizer`.
        labels: for a list of texts: one label per text (class ids, class names, or
            floats: regression targets), or a dict of such label sets by name, for a
            FineTuner with one head per name. Files and datasets carry their own.
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
        format: files only: `"text"`, `"jsonl"`, `"csv"`, `"tsv"` or `"tfrecord"`
            (default: from the suffix).
        text_field: JSON Lines field or TFRecord feature of the text (default "text").
        text_column: CSV/TSV column of the text, by header name or position
            (default "text").
        label_field: JSON Lines field or TFRecord feature of the label.
        label_column: CSV/TSV column of the label.
        document: plain-text files: `"line"` or `"file"` per document.
        label_vocabulary: class names in id order (class names in the labels must
            be among them; class ids index them).
        buffer_size: records shuffled together when reading files or a stream.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog", "a large cat", "the dog barks"]
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> ds = pl.data.text_dataset(texts, tok, labels=["dog", "cat", "dog"],
        ...                           batch_size=2, sequence_length=8)
        >>> x, y = next(iter(ds))
        >>> x["token_ids"].shape, y.shape, ds.class_names
        (TensorShape([2, 8]), TensorShape([2]), ['cat', 'dog'])

        From a JSON Lines file:

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
        >>> _ = path.write_text('{"text": "a small dog", "label": "dog"}\\n'
        ...                     '{"text": "a large cat", "label": "cat"}\\n')
        >>> ds = pl.data.text_dataset(str(path), tok, label_field="label",
        ...                           batch_size=2, sequence_length=8)
        >>> x, y = next(iter(ds))
        >>> sorted(y.numpy().tolist()), ds.class_names
        ([0, 1], ['cat', 'dog'])
    """
    validation.positive_int("batch_size", batch_size)
    validation.positive_int("sequence_length", sequence_length)
    validation.positive_int("buffer_size", buffer_size)
    if sequence_length < 3:
        raise ValueError(
            "`sequence_length` must be at least 3 ([CLS], one token, [SEP]). "
            f"Received: sequence_length={sequence_length}"
        )
    if reset_attention and not pack:
        raise ValueError(
            "`reset_attention=True` separates packed documents; it needs `pack=True`."
        )
    file_arguments = {"format": format, "text_field": text_field, "text_column": text_column,
                      "label_field": label_field, "label_column": label_column}
    if files.is_paths(texts):
        if labels is not None or pairs is not None:
            arg = "labels" if labels is not None else "pairs"
            raise ValueError(
                f"`{arg}` is for a list of texts; files carry their own fields: pass "
                "`label_field` (JSON Lines, TFRecord) or `label_column` (CSV/TSV).")
        if isinstance(texts, files.TextFiles):
            given = [k for k, v in {**file_arguments, "label_vocabulary": label_vocabulary,
                                    "document": None if document == "line" else document
                                    }.items() if v is not None]
            if given:
                raise ValueError(f"`{given[0]}` goes to the TextFiles itself when `texts` "
                                 "is one.")
            corpus = texts
        else:
            corpus = files.TextFiles(texts, document=document,
                                     label_vocabulary=label_vocabulary, **file_arguments)
        return _file_dataset(corpus, tokenizer, batch_size, sequence_length, pack,
                             reset_attention, shuffle, seed, buffer_size)
    given = [name for name, value in file_arguments.items() if value is not None]
    if given or document != "line":
        raise ValueError(f"`{(given or ['document'])[0]}` is for files: pass a path, a glob or "
                         "a list of pathlib.Path as `texts`.")
    if isinstance(texts, tf.data.Dataset):
        if labels is not None or pairs is not None:
            raise ValueError("`labels` and `pairs` are for a list of texts; a dataset "
                             "yields (text, label) pairs itself.")
        return _streamed_dataset(texts, tokenizer, batch_size, sequence_length, pack,
                                 reset_attention, shuffle, seed, label_vocabulary, buffer_size)
    texts = validation.string_list("texts", texts)
    files.check_not_paths("texts", texts)
    names = None
    if labels is not None:
        if pack:
            raise ValueError(
                "`pack=True` mixes documents in one row, so it cannot carry per-text "
                "`labels`. Use pack=False for labeled data."
            )
        if isinstance(labels, dict):  # several label sets, one per head of a FineTuner
            if label_vocabulary is not None:
                raise ValueError("`label_vocabulary` names one label set's classes; with "
                                 "`labels` as a dict, give each set as class ids or names.")
            both = {task: _class_ids(values, len(texts), None)
                    for task, values in labels.items()}
            labels = {task: ids for task, (ids, _) in both.items()}
            names = {task: n for task, (_, n) in both.items() if n is not None} or None
        else:
            labels, names = _class_ids(labels, len(texts), label_vocabulary)
    elif label_vocabulary is not None:
        raise ValueError("`label_vocabulary` names the classes of `labels`; pass labels.")
    if pairs is not None:
        if pack:
            raise ValueError("`pairs` keeps two texts together in a row; it needs pack=False.")
        pairs = validation.string_list("pairs", pairs)
        if len(pairs) != len(texts):
            raise ValueError(
                f"`pairs` must hold one second text per text ({len(texts)}). "
                f"Received: {len(pairs)} pairs"
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
    return _named(epochs.Examples(columns, batch_size, shuffle=shuffle, seed=seed).dataset(),
                  names)


def _packed_dataset(texts, tokenizer, batch_size, sequence_length, shuffle, seed,
                    reset_attention=False):
    # Tokenize once; keep documents as rows of a ragged tensor so each epoch can
    # reshuffle document order before packing.
    docs = packing.closed(tokenizer.token_ids(texts), tokenizer)
    body = sequence_length - 1  # every row starts with [CLS]
    num_rows = int(docs.flat_values.shape[0]) // body
    num_batches = num_rows // batch_size
    if num_batches == 0:
        raise ValueError(
            f"`texts` hold {int(docs.flat_values.shape[0])} tokens, fewer than one packed "
            f"batch of {batch_size} rows x {sequence_length} tokens. Pass more texts or a "
            "smaller `batch_size` / `sequence_length`."
        )

    def pack_epoch(key, first_batch):
        order = tf.range(docs.nrows())
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, key)
        stream = tf.gather(docs, order).flat_values[: num_rows * body]
        rows = tf.reshape(stream, [num_rows, body])[first_batch * batch_size:
                                                    num_batches * batch_size]
        return tf.data.Dataset.from_tensor_slices(packing.packed_inputs(
            rows, tokenizer, reset_attention)).batch(batch_size, drop_remainder=True)

    # Each epoch packs its own document order, keyed by (seed, epoch).
    return epochs.EpochSource(pack_epoch, num_batches, seed).dataset()


def _class_ids(labels, count, vocabulary):
    """Labels for `count` texts as ids (or float targets), with their class names."""
    if label_names.is_names(labels):
        names = label_names.vocabulary("label_vocabulary", set(labels), vocabulary)
        return label_names.class_ids("labels", list(labels), names, "text"), names
    labels = validation.class_labels("labels", labels, count, "text")
    if vocabulary is None:
        return labels, None
    if labels.dtype.kind == "f":
        raise ValueError("`label_vocabulary` names classes; float labels are regression "
                         "targets.")
    names = label_names.vocabulary("label_vocabulary", (), vocabulary)
    if labels.max() >= len(names):
        raise ValueError(f"`labels` holds class id {int(labels.max())}, but "
                         f"`label_vocabulary` names {len(names)} classes.")
    return labels, names


def _named(dataset: tf.data.Dataset, names) -> tf.data.Dataset:
    """`dataset` with Keras's `class_names` attribute (None without names)."""
    dataset.class_names = names
    return dataset


def _file_dataset(corpus: files.TextFiles, tokenizer, batch_size, sequence_length, pack,
                  reset_attention, shuffle, seed, buffer_size):
    if pack:
        if corpus.labeled:
            raise ValueError("`pack=True` mixes documents in one row, so it cannot carry "
                             "labels; leave out `label_field` / `label_column`.")
        # Rows are not known before the corpus is tokenized: the stream records
        # where each batch ends, and a checkpoint resumes from there.
        records = files.FileRecords(corpus, batch_size=1, shuffle=shuffle,
                                    buffer_size=buffer_size)
        return packing.PackedFiles(records, tokenizer, batch_size, sequence_length,
                                   reset_attention, seed).dataset()

    source = files.FileRecords(corpus, batch_size, shuffle=shuffle, seed=seed,
                               buffer_size=buffer_size,
                               prepare=_encoder(tokenizer, sequence_length, corpus.labeled))
    return _named(source.dataset(), corpus.class_names)


def _streamed_dataset(dataset, tokenizer, batch_size, sequence_length, pack, reset_attention,
                      shuffle, seed, vocabulary, buffer_size):
    spec = dataset.element_spec
    labeled = isinstance(spec, tuple) and len(spec) == 2
    text_spec = spec[0] if labeled else spec
    if not (isinstance(text_spec, tf.TensorSpec) and text_spec.dtype == tf.string
            and text_spec.shape.rank == 0):
        raise ValueError(
            "`texts` as a tf.data.Dataset must yield single strings (unbatched), or "
            f"(string, label) pairs. Received: a dataset of {spec}; call .unbatch() on a "
            "batched one.")
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed if seed is not None
                                  else epochs.draw_seed())
    if pack:
        if labeled:
            raise ValueError("`pack=True` mixes documents in one row, so it cannot carry "
                             "labels; pass a dataset of strings.")
        return packing.streamed_packing(dataset, tokenizer, batch_size, sequence_length,
                                        reset_attention)
    names = None
    if labeled and spec[1].dtype == tf.string:
        if vocabulary is None:
            raise ValueError("The dataset's labels are strings: pass `label_vocabulary` "
                             "(the class names in id order) to turn them into class ids.")
        names = label_names.vocabulary("label_vocabulary", (), vocabulary)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(names),
                                                tf.range(len(names), dtype="int32")), -1)

        def to_ids(labels):
            found = table.lookup(labels)
            tf.debugging.assert_non_negative(
                found, message="a label of the dataset is not in `label_vocabulary`")
            return found
    else:
        to_ids = None
        if vocabulary is not None:
            names = label_names.vocabulary("label_vocabulary", (), vocabulary)
    encode = _encoder(tokenizer, sequence_length, labeled, to_ids)
    return _named(dataset.batch(batch_size).map(
        lambda *batch: encode(batch if labeled else batch[0]),
        num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE), names)


def _encoder(tokenizer, sequence_length, labeled, to_ids=None):
    """`encode(batch)`: a batch of texts (or of (texts, labels)) as model inputs (and
    labels, through `to_ids` if given)."""
    def encode(batch):
        texts, *labels = batch if labeled else (batch,)
        encoded = tokenizer.encode(texts, sequence_length)
        if not labels:
            return encoded
        return encoded, labels[0] if to_ids is None else to_ids(labels[0])

    return encode
