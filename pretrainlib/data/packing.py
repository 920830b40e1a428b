"""Packing documents into full rows: in one piece, as a stream, or from files.

`packed_inputs` turns rows of tokens into model inputs; `streamed_packing` packs a
stream of texts as it goes. `PackedFiles` packs files, resumable at the exact next
row:

Rows of a packed corpus are not known before it is tokenized: which document a
batch starts in depends on the length of every document before it. So instead of
locating batch `b` from the index, a packed stream *records* where each batch it
delivers ends: (epoch, window, rows of that window done) and the tokens carried
into that window from the one before. A checkpoint saves that position; a resumed
run tokenizes the one window it is in and goes on from the next row, in time and
memory that do not depend on how far into the corpus it is.

Windows are those of `FileRecords` (chunks in a keyed order, records shuffled in a
bounded buffer); within an epoch, tokens left over from one window start the
next window's rows, so an epoch's rows are those of packing its documents in one
piece. Batches run on from one epoch into the next without a gap.
"""

from __future__ import annotations

import tensorflow as tf

from pretrainlib import epochs

AUTOTUNE = tf.data.AUTOTUNE
_KEPT = 100_000  # positions remembered (batches); a checkpoint reads a recent one
_WINDOW = 1024  # documents tokenized at a time by `streamed_packing`


def packed_inputs(rows, tokenizer, reset_attention: bool) -> dict:
    """Packed rows of `sequence_length - 1` tokens as model inputs: `[CLS]` first,
    the mask all ones or, with `reset_attention`, numbering each row's documents."""
    rows = tf.concat([tf.fill([tf.shape(rows)[0], 1], tokenizer.cls_id), rows], axis=1)
    if not reset_attention:
        mask = tf.ones_like(rows)
    else:  # document number within the row: 1 + the [SEP]s before each token
        ends = tf.cast(rows == tokenizer.sep_id, "int32")
        mask = 1 + tf.cumsum(ends, axis=1, exclusive=True)
    return {"token_ids": rows, "padding_mask": mask}


def closed(docs: tf.RaggedTensor, tokenizer) -> tf.RaggedTensor:
    """Documents' token ids (int32 ragged `[docs, None]`), each closed by `[SEP]`."""
    sep = tf.fill([docs.nrows(), 1], tf.constant(tokenizer.sep_id, "int32"))
    return tf.concat([docs, tf.RaggedTensor.from_tensor(sep)], axis=1)


def _tokens(tokenizer):
    """`tokens(texts)`: the texts' token ids end to end, each text closed by [SEP]."""
    def tokens(texts):
        return closed(tf.cast(tokenizer.tokenize(texts), "int32"), tokenizer).flat_values

    return tokens


def _cut(body: int):
    """A `scan` step: tokens carried + a window's tokens -> full rows, the rest carried."""
    def cut(carried, stream):
        stream = tf.concat([carried, stream], axis=0)
        full = tf.shape(stream)[0] // body * body
        return stream[full:], tf.reshape(stream[:full], [-1, body])

    return cut


def streamed_packing(documents: tf.data.Dataset, tokenizer, batch_size: int,
                     sequence_length: int, reset_attention: bool) -> tf.data.Dataset:
    """A stream of texts packed as it goes: windows of documents tokenized, each
    followed by `[SEP]`, and cut into rows; the tokens left over start the next
    window's rows, so the rows equal those of packing the whole stream at once."""
    return (documents.batch(_WINDOW)
            .map(_tokens(tokenizer), num_parallel_calls=AUTOTUNE)
            .scan(tf.zeros([0], "int32"), _cut(sequence_length - 1))
            .unbatch()
            .batch(batch_size, drop_remainder=True)
            .map(lambda rows: packed_inputs(rows, tokenizer, reset_attention),
                 num_parallel_calls=AUTOTUNE)
            .prefetch(AUTOTUNE))


class PackedFiles(epochs.EpochSource):
    """The packed rows of the texts of `records` (a `FileRecords` without labels).

    `num_batches` (an epoch for Keras) is an estimate of one pass over the corpus,
    from the tokens per record of its first chunk: passes of the data are not cut
    to it, batches flow on from one pass into the next.

    Examples:
        >>> import pathlib, tempfile, pretrainlib as pl
        >>> from pretrainlib.data.files import FileRecords, TextFiles
        >>> from pretrainlib.data.packing import PackedFiles
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "docs.txt"
        >>> _ = path.write_text("".join(f"document number {i} is short\\n" for i in range(60)))
        >>> tok = pl.text.WordPieceTokenizer.train(str(path), vocab_size=40)
        >>> records = FileRecords(TextFiles(path), batch_size=1, seed=0, buffer_size=20)
        >>> source = PackedFiles(records, tok, batch_size=2, sequence_length=16, seed=0)
        >>> run = [b["token_ids"].numpy() for b in source.run_stream(None, 0, 0).take(6)]
        >>> position = source.position_after(3)  # what a checkpoint after 3 batches saves
        >>> resumed = [b["token_ids"].numpy() for b in source.run_stream(position, 0, 3).take(3)]
        >>> all((a == b).all() for a, b in zip(resumed, run[3:]))
        True
    """

    positional = True  # resumed from a recorded position, not from a batch number

    def __init__(self, records, tokenizer, batch_size: int, sequence_length: int,
                 reset_attention: bool = False, seed: int | None = None):
        self.records = records
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.body = int(sequence_length) - 1  # every row starts with [CLS]
        self.reset_attention = bool(reset_attention)
        self._after: dict = {}  # run batch -> (epoch, window, rows of it done)
        self._carries: dict = {}  # (epoch, window) -> tokens carried into it
        super().__init__(self._not_addressable, self._estimate(), seed)

    def _estimate(self) -> int:
        texts, _ = self.records.files.read(0)
        tokens = int(tf.size(self.tokenizer.token_ids(texts).flat_values))
        per_record = (tokens + len(texts)) / len(texts)  # each record ends with [SEP]
        rows = self.records.files.records * per_record / self.body
        return max(1, int(rows // self.batch_size))

    def _not_addressable(self, key, first_batch):
        raise TypeError("A packed file stream is resumed from a recorded position "
                        "(`run_stream`), not built at a batch number.")

    # === Streams ===
    def run_stream(self, position: dict | None, epoch: int, first_batch: int,
                   record: bool = True) -> tf.data.Dataset:
        """Every batch from `position` (None: the start of `epoch`) on, endlessly,
        numbered from `first_batch`; with `record`, each batch's end is remembered
        for `position_after`."""
        if position is None:
            position = {"epoch": int(epoch), "window": 0, "rows": 0, "carry": []}
        first = self._epoch_rows(position["epoch"], position["window"], position["rows"],
                                 position["carry"])
        later = tf.data.Dataset.counter(position["epoch"] + 1).flat_map(
            lambda e: self._epoch_rows(e, 0, 0, []))
        batches = first.concatenate(later).batch(self.batch_size, drop_remainder=True)
        numbers = tf.data.Dataset.counter(first_batch)
        return (tf.data.Dataset.zip(batches, numbers)
                .map(lambda rows, n: self._inputs(rows, n, record), num_parallel_calls=AUTOTUNE)
                .prefetch(AUTOTUNE))

    def dataset(self) -> tf.data.Dataset:
        """One estimated epoch; each pass draws a fresh order (nothing recorded)."""
        passes = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)
        ds = passes.take(1).flat_map(self._pass).take(self.num_batches)
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.num_batches))
        epochs._SOURCES[ds] = self
        return ds

    def _pass(self, draw):
        rows = self._epoch_rows(draw, 0, 0, [])
        return rows.batch(self.batch_size, drop_remainder=True).map(
            lambda *rows: self._inputs(rows, tf.constant(-1, "int64"), False))

    def position_after(self, batches: int) -> dict | None:
        """Where the stream stands after its first `batches` batches (None: at the
        start): what a checkpoint saves."""
        if batches == 0:
            return None
        epoch, window, rows = self._after[batches - 1]
        return {"epoch": epoch, "window": window, "rows": rows,
                "carry": self._carries[(epoch, window)]}

    # === Pieces ===
    def _epoch_rows(self, epoch, first_window, skip_rows, carry) -> tf.data.Dataset:
        """Rows of epoch `epoch` from window `first_window` (into which `carry` is
        carried), its first `skip_rows` rows left out: (row, epoch, window, row)."""
        epoch = tf.cast(epoch, "int64")
        key = self.key(epoch)
        body = self.body
        tokens = _tokens(self.tokenizer)
        rows_of = _cut(body)

        def cut(carried, step):
            window, stream = step
            noted = tf.py_function(self._note_carry, [epoch, window, carried], tf.int64)
            with tf.control_dependencies([noted]):
                carried, rows = rows_of(carried, stream)
            skip = tf.where(window == first_window, tf.cast(skip_rows, "int64"), 0)
            numbers = tf.range(tf.shape(rows, out_type="int64")[0])
            return carried, (rows[skip:], numbers[skip:], window)

        windows = self.records.windows(key, first_window).map(
            tokens, num_parallel_calls=AUTOTUNE)
        numbered = tf.data.Dataset.zip(
            tf.data.Dataset.counter(tf.cast(first_window, "int64")), windows)
        start = tf.reshape(tf.constant(carry, "int32"), [-1])
        return (numbered.scan(start, cut)
                .flat_map(lambda rows, numbers, window: tf.data.Dataset.from_tensor_slices(
                    (rows, tf.fill(tf.shape(numbers), epoch),
                     tf.fill(tf.shape(numbers), window), numbers))))

    def _inputs(self, rows, number, record):
        tokens, epoch, window, row = rows
        if record:
            noted = tf.py_function(self._note_batch, [number, epoch[-1], window[-1], row[-1]],
                                   tf.int64)
            with tf.control_dependencies([noted]):
                tokens = tf.identity(tokens)
        return packed_inputs(tokens, self.tokenizer, self.reset_attention)

    def _note_carry(self, epoch, window, carried):
        self._carries[(int(epoch), int(window))] = carried.numpy().tolist()
        _trim(self._carries)
        return tf.constant(0, "int64")

    def _note_batch(self, number, epoch, window, row):
        self._after[int(number)] = (int(epoch), int(window), int(row) + 1)
        _trim(self._after)
        return tf.constant(0, "int64")


def _trim(table: dict) -> None:
    if len(table) > 2 * _KEPT:
        for key in sorted(table)[:-_KEPT]:
            del table[key]
