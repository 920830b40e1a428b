"""Text corpora on disk: paths and globs, their records, epochs read from them.

`TextFiles` names the files and the fields of their records, reads each file once
to index it (every record checked, the offset of every `CHUNK`-th noted; the index
is cached on disk, keyed by the file's path, size and modification time, so a
corpus is indexed once, not once per run) and knows the corpus's length, its
label vocabulary and how to read any chunk.

`FileRecords` is the `pl.epochs.EpochSource` over them. Epoch `e` is read as:
chunks in an order permuted by the key (seed, e); consecutive chunks grouped into
windows of about `buffer_size` records; each window's records permuted by the key
and the window's number (a bounded shuffle buffer, seeded); batches cut from the
stream of windows. Any batch of any epoch is located from the chunk lengths in the
index, so a resumed run reads one window to reach its batch, however far into the
corpus it is, and memory holds a window at a time, however large the corpus.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from pretrainlib import epochs, validation
from pretrainlib.data import formats, labels as label_names

CHUNK = 1024  # records between two offsets of the index
DEFAULT_BUFFER = 16384  # records shuffled together
_INDEX_VERSION = 1
AUTOTUNE = tf.data.AUTOTUNE


def is_paths(value) -> bool:
    """Whether `value` names files: a `TextFiles`, a path (str or os.PathLike) or a
    list of os.PathLike. A list of str is taken for texts."""
    if isinstance(value, (str, os.PathLike, TextFiles)):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(v, os.PathLike) for v in value)


def check_not_paths(name: str, texts: list[str]) -> None:
    """Refuses a list of str that names existing files: texts were meant as paths."""
    if len(texts) <= 1000 and all(os.path.isfile(t) for t in texts):
        raise ValueError(
            f"`{name}` is a list of strings that all name files ({texts[:3]}...): a list "
            "of str is read as the texts themselves. To read the files, pass one path or "
            f"glob as a str, or a list of pathlib.Path.")


class TextFiles:
    """The files of a text corpus and the fields of their records.

    Args:
        paths: a path, a glob pattern (`"corpus/*.jsonl"`), a directory (the files
            of a known suffix under it) or a list of them.
        format: `"text"`, `"jsonl"`, `"csv"`, `"tsv"` or `"tfrecord"`; default: from
            the suffix (`.txt`, `.jsonl`, `.csv`, `.tsv`, `.tfrecord`).
        text_field: JSON Lines field / TFRecord bytes feature of the text (default
            `"text"`).
        text_column: CSV/TSV column (name in the header row, or position) of the
            text (default `"text"`).
        label_field: JSON Lines field / TFRecord feature of the label, if any.
        label_column: CSV/TSV column of the label, if any.
        document: plain text only: `"line"` (each non-empty line a document) or
            `"file"` (each file one document).
        label_vocabulary: class names in id order; default: the sorted string labels
            found (numbers are class ids, floats regression targets).

    Examples:
        >>> import pathlib, tempfile
        >>> from pretrainlib.data.files import TextFiles
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.jsonl").write_text('{"text": "a dog", "label": "animal"}\\n'
        ...                                     '{"text": "a car", "label": "thing"}\\n')
        >>> corpus = TextFiles(folder / "a.jsonl", label_field="label")
        >>> corpus.records, corpus.class_names
        (2, ['animal', 'thing'])
    """

    def __init__(self, paths, format: str | None = None, text_field: str | None = None,
                 text_column: str | int | None = None, label_field: str | None = None,
                 label_column: str | int | None = None, document: str = "line",
                 label_vocabulary: Sequence[str] | None = None):
        self.paths = resolve(paths)
        self.format = _format(self.paths, format, text_field, text_column, label_field,
                              label_column, document)
        self.indexes = [_cached_index(path, self.format) for path in self.paths]
        self.columns = ([formats.columns_of(p, self.format) for p in self.paths]
                        if self.format.name in ("csv", "tsv") else [None] * len(self.paths))
        self.records = sum(index.records for index in self.indexes)
        self.largest_label, self._ids = None, None  # class ids: names -> id, if named
        self.class_names, self.label_dtype = self._labels(label_vocabulary)
        chunks = [(f, index.offsets[c], index.offsets[c + 1], index.counts[c])
                  for f, index in enumerate(self.indexes) for c in range(len(index.counts))]
        self.chunk_file, self.chunk_start, self.chunk_end, self.chunk_count = (
            np.array(column, "int64") for column in zip(*chunks))

    @property
    def labeled(self) -> bool:
        return self.format.label is not None

    def _labels(self, given):
        if not self.labeled:
            if given is not None:
                raise ValueError("`label_vocabulary` needs labels: pass `label_field` "
                                 "(JSON Lines, TFRecord) or `label_column` (CSV/TSV).")
            return None, None
        found = {}
        for index in self.indexes:
            for label, line in index.labels.items():
                found.setdefault(label, (index.path, line))
        kinds = {formats._kind(label) for label in found}
        if "str" in kinds and len(kinds) > 1:
            number = next((p, line) for k, (p, line) in found.items() if not isinstance(k, str))
            name = next((p, line) for k, (p, line) in found.items() if isinstance(k, str))
            raise ValueError(f"The label column mixes numbers ({number[0]}, line {number[1]}) "
                             f"and names ({name[0]}, line {name[1]}); use one type.")
        if kinds == {"float"}:
            if given is not None:
                raise ValueError("`label_vocabulary` names classes; float labels are "
                                 "regression targets.")
            return None, "float32"
        if kinds == {"int"}:
            negative = [(label, where) for label, where in found.items() if label < 0]
            if negative:
                label, (path, line) = negative[0]
                raise ValueError(f"{path}, line {line}: class id {label} is negative; class "
                                 "ids count from 0 (or use names and a label vocabulary).")
            self.largest_label = max(found)
            if given is None:
                return None, "int32"
            names = label_names.vocabulary("label_vocabulary", (), given)
            if self.largest_label >= len(names):
                label, (path, line) = self.largest_label, found[self.largest_label]
                raise ValueError(f"{path}, line {line}: class id {label}, but "
                                 f"`label_vocabulary` names {len(names)} classes.")
            return names, "int32"
        names = label_names.vocabulary("label_vocabulary", found, given)
        missing = [(label, where) for label, where in found.items() if str(label) not in names]
        if missing:
            label, (path, line) = missing[0]
            raise ValueError(f"{path}, line {line}: label {label!r} is not in the label "
                             f"vocabulary {names[:20]}; add it to `label_vocabulary` or "
                             "drop the record.")
        self._ids = {name: i for i, name in enumerate(names)}
        self.largest_label = max(self._ids[str(label)] for label in found)
        return names, "int32"

    def read(self, chunk: int):
        """The texts (and label ids or targets) of chunk `chunk`."""
        f = int(self.chunk_file[chunk])
        texts, labels = formats.read(self.paths[f], self.format, int(self.chunk_start[chunk]),
                                     int(self.chunk_end[chunk]), self.columns[f])
        if len(texts) != self.chunk_count[chunk]:
            raise ValueError(f"{self.paths[f]} changed after it was indexed (a chunk held "
                             f"{self.chunk_count[chunk]} records, now {len(texts)}); "
                             "rebuild the dataset.")
        if labels is not None and self._ids is not None:
            labels = [self._ids[str(label)] for label in labels]
        return texts, labels

    def texts(self, limit: int | None = None):
        """The texts, in file order (a generator). With `limit`, at most `limit` of
        them, read from chunks spread evenly over the corpus (a sample of every
        part, not its first lines)."""
        chunks, quota = np.arange(len(self.chunk_count)), CHUNK
        if limit is not None and limit < self.records:
            wanted = -(-limit * len(chunks) // self.records) + 1
            chunks = np.unique(np.linspace(0, len(chunks) - 1, min(wanted, len(chunks)))
                               .round().astype("int64"))
            quota = -(-limit // len(chunks))  # the same share from each chunk
        seen = 0
        for chunk in chunks:
            for text in self.read(int(chunk))[0][:quota]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield text


class FileRecords(epochs.EpochSource):
    """The batches of `TextFiles`, each epoch read as the module docstring says,
    each batch of `(texts[, labels])` passed through `prepare` (tokenization) under
    the batch's seed.

    Examples:
        >>> import pathlib, tempfile
        >>> from pretrainlib.data.files import FileRecords, TextFiles
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "lines.txt"
        >>> _ = path.write_text("".join(f"line {i}\\n" for i in range(10)))
        >>> source = FileRecords(TextFiles(path), batch_size=4, seed=0, buffer_size=4)
        >>> epoch = [t.numpy().tolist() for t in source.epoch(0)]
        >>> len(epoch), sorted(sum(epoch, [])) == sorted(
        ...     f"line {i}".encode() for i in range(10))
        (3, True)
        >>> [t.numpy().tolist() for t in source.epoch(0, first_batch=1)] == epoch[1:]
        True
    """

    def __init__(self, files: TextFiles, batch_size: int, shuffle: bool = True,
                 seed: int | None = None, buffer_size: int = DEFAULT_BUFFER, prepare=None,
                 draws: bool = False):
        self.files = files
        self.batch_size = validation.positive_int("batch_size", batch_size)
        self.buffer_size = validation.positive_int("buffer_size", buffer_size)
        self.shuffle = bool(shuffle)
        self.prepare = prepare
        self.chunks = np.arange(len(files.chunk_count))  # the chunks read (a shard's)
        super().__init__(self._epoch_batches, -(-files.records // self.batch_size), seed,
                         draws)

    def shard(self, index: int, count: int) -> "FileRecords":
        """Input pipeline `index` of `count` (one per worker): the same epochs of its
        own chunks only (chunk `c` goes to pipeline `c % count`), batches of
        `batch_size // count`, and as many full batches per epoch as the pipeline
        with the fewest records has, so that every worker takes the same steps.
        What a longer shard leaves over at an epoch's end is the tail of that
        epoch's order: other records each epoch."""
        if self.batch_size % count:
            raise ValueError(f"`batch_size={self.batch_size}` must divide by the {count} "
                             "input pipelines (workers) to shard the files between them.")
        if len(self.chunks) < count:
            raise ValueError(f"The files hold {len(self.chunks)} chunks of records, fewer "
                             f"than the {count} workers to shard them between.")
        other = epochs._copy(self)
        other.chunks = self.chunks[self.chunks % count == index]
        other.batch_size = self.batch_size // count
        other.num_batches = min(
            int(self.files.chunk_count[self.chunks[self.chunks % count == i]].sum())
            for i in range(count)) // other.batch_size
        return other

    def _read_window(self, chunks):
        texts, labels = [], []
        for chunk in chunks.numpy():
            t, y = self.files.read(int(chunk))
            texts += t
            labels += y or []
        if not self.files.labeled:
            return tf.constant(texts, tf.string)
        return tf.constant(texts, tf.string), tf.constant(labels, self.files.label_dtype)

    def _window(self, key, order, window_of, window, skip):
        chunks = tf.boolean_mask(order, tf.equal(window_of, window))
        out = (tf.string,) if not self.files.labeled else (tf.string, self.files.label_dtype)
        read = tf.py_function(self._read_window, [chunks], out)
        read = [tf.ensure_shape(t, [None]) for t in read]
        size = tf.shape(read[0], out_type="int64")[0]
        positions = tf.range(size)
        if self.shuffle:
            positions = tf.random.experimental.stateless_shuffle(
                positions, tf.random.experimental.stateless_fold_in(key, window))
        positions = positions[skip:]
        picked = tuple(tf.gather(t, positions) for t in read)
        return picked if len(picked) > 1 else picked[0]

    def largest_label(self) -> int | None:
        return self.files.largest_label

    def layout(self, key):
        """Epoch `key`'s chunk order, the window of each chunk, the record each chunk
        starts at, and the number of windows."""
        order = tf.constant(self.chunks, "int64")
        if self.shuffle:
            order = tf.random.experimental.stateless_shuffle(order, key)
        counts = tf.gather(tf.constant(self.files.chunk_count), order)
        starts = tf.cumsum(counts, exclusive=True)
        window_of = starts // self.buffer_size  # consecutive chunks, ~buffer_size records
        return order, window_of, starts, window_of[-1] + 1

    def windows(self, key, first_window, skip=0) -> tf.data.Dataset:
        """Epoch `key`'s windows from `first_window` on, each one element: its
        records (texts[, labels]) in their shuffled order, the first `skip` of the
        first window left out."""
        order, window_of, _, count = self.layout(key)
        return (tf.data.Dataset.range(first_window, count)
                .map(lambda w: self._window(key, order, window_of, w,
                                            tf.where(w == first_window, skip, 0)),
                     num_parallel_calls=2)
                .prefetch(1))

    def _epoch_batches(self, key, first_batch):
        _, window_of, starts, _ = self.layout(key)
        first = tf.cast(first_batch, "int64") * self.batch_size
        holder = tf.searchsorted(starts, [first], side="right")[0] - 1  # chunk with `first`
        first_window = window_of[holder]
        skip = first - tf.reduce_min(tf.boolean_mask(starts, window_of == first_window))
        batches = (self.windows(key, first_window, skip).unbatch().batch(self.batch_size)
                   .take(self.num_batches - first_batch))  # a shard's: full batches only
        if self.prepare is None:
            return batches
        return epochs.prepared(batches, key, first_batch, self.batch_size, self.prepare)


def iterate_texts(name: str, texts, limit: int | None = None) -> Iterator[str]:
    """The texts of a list, files (a path, glob, list of `pathlib.Path` or a
    `TextFiles`) or a `tf.data.Dataset` of strings, one at a time, at most `limit`
    (from files: spread over the corpus, see `TextFiles.texts`)."""
    if limit is not None:
        validation.positive_int("max_texts", limit)
    if isinstance(texts, TextFiles) or is_paths(texts):
        corpus = texts if isinstance(texts, TextFiles) else TextFiles(texts)
        return corpus.texts(limit)
    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if not (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string
                and spec.shape.rank == 0):
            raise ValueError(f"`{name}` as a tf.data.Dataset must yield single strings "
                             f"(unbatched). Received: a dataset of {spec}")
        texts = texts if limit is None else texts.take(limit)
        return (t.decode("utf-8") for t in texts.as_numpy_iterator())
    texts = validation.string_list(name, texts)
    check_not_paths(name, texts)
    return iter(texts[:limit])


def resolve(paths) -> list[str]:
    """The files `paths` names (paths, globs, directories), sorted; an error names
    any that matches nothing."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("`paths` is empty; pass a file, a glob or a directory.")
    found = []
    for item in items:
        item = os.fspath(item)
        if glob.has_magic(item):
            matched = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matched:
                raise FileNotFoundError(f"The pattern {item!r} matches no file.")
            found += matched
        elif os.path.isdir(item):
            matched = sorted(
                os.path.join(root, name) for root, _, names in os.walk(item) for name in names
                if os.path.splitext(name)[1].lower() in formats.SUFFIXES)
            if not matched:
                raise FileNotFoundError(
                    f"The directory {item!r} holds no file with a known suffix "
                    f"({sorted(formats.SUFFIXES)}).")
            found += matched
        elif os.path.isfile(item):
            found.append(item)
        else:
            hint = (" (a str is read as a path or glob; texts go in a list)"
                    if isinstance(paths, str) else "")
            raise FileNotFoundError(f"No such file or directory: {item!r}{hint}")
    return list(dict.fromkeys(found))


def _format(paths, name, text_field, text_column, label_field, label_column, document):
    validation.one_of("document", document, ("line", "file"))
    if name is None:
        suffixes = {formats.SUFFIXES.get(os.path.splitext(p)[1].lower()) for p in paths}
        if None in suffixes:
            unknown = next(p for p in paths
                           if os.path.splitext(p)[1].lower() not in formats.SUFFIXES)
            raise ValueError(f"Cannot tell the format of {unknown!r} from its suffix; pass "
                             f"`format=` one of {list(formats.FORMATS)}.")
        if len(suffixes) > 1:
            raise ValueError(f"The files mix formats {sorted(suffixes)}; read each format "
                             "with its own dataset, or pass `format=`.")
        name = suffixes.pop()
    validation.one_of("format", name, formats.FORMATS)
    tabular = name in ("csv", "tsv")
    for arg, value, wanted in (("text_field", text_field, not tabular and name != "text"),
                               ("label_field", label_field, not tabular and name != "text"),
                               ("text_column", text_column, tabular),
                               ("label_column", label_column, tabular)):
        if value is not None and not wanted:
            hint = ("`text_column` / `label_column`" if tabular else
                    "nothing: each line is a document (use JSON Lines or CSV for labels)"
                    if name == "text" else "`text_field` / `label_field`")
            raise ValueError(f"`{arg}` does not apply to {name} files; they take {hint}.")
    if document == "file" and name != "text":
        raise ValueError("`document='file'` is for plain-text files, where each file is one "
                         f"document; {name} files hold records.")
    text = text_column if tabular else text_field
    label = label_column if tabular else label_field
    return formats.Format(name, None if name == "text" else (text if text is not None else "text"),
                          label, per_file=document == "file")


def _cache_dir() -> str:
    return os.path.join(os.environ.get("PRETRAINLIB_CACHE")
                        or os.path.join(os.path.expanduser("~"), ".cache", "pretrainlib"),
                        "file_index")


def _cached_index(path: str, fmt: formats.Format) -> formats.FileIndex:
    """The index of `path`, read from the cache when the file has not changed."""
    stat = os.stat(path)
    key = json.dumps([_INDEX_VERSION, os.path.realpath(path), stat.st_size, stat.st_mtime_ns,
                      fmt.name, fmt.text, fmt.label, fmt.per_file, CHUNK])
    cached = os.path.join(_cache_dir(), hashlib.sha256(key.encode()).hexdigest() + ".npz")
    if os.path.exists(cached):
        try:
            with np.load(cached) as arrays:
                return formats.FileIndex.from_arrays(path, arrays)
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: index again
    built = formats.index(path, fmt, CHUNK)
    try:  # written whole, then renamed: never half an index
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        partial = f"{cached}.{os.getpid()}.tmp.npz"
        np.savez(partial, **built.to_arrays())
        os.replace(partial, cached)
    except OSError:
        pass  # a read-only home: the index is simply not kept
    return built
