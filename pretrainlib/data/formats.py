"""Record formats of text files: where each record starts, and what it holds.

One pass over a file (`index`) checks every record (UTF-8, JSON, the named field
or column, the label's type) and notes the byte offset of every `chunk`-th record,
so that later reads seek straight to any chunk (`read`): a pipeline starts at any
position without reading the records before it. Formats:

- `"text"`: one document per non-empty line (empty lines are not documents), or
  one per file with `document="file"`;
- `"jsonl"`: one JSON object per line, the text under `text_field`;
- `"csv"` / `"tsv"`: a header row, then records (quoted fields may span lines);
- `"tfrecord"`: `tf.train.Example` records, the text a bytes feature `text_field`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import struct

import numpy as np

SUFFIXES = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".csv": "csv", ".tsv": "tsv", ".tfrecord": "tfrecord", ".tfrecords": "tfrecord"}
FORMATS = ("text", "jsonl", "csv", "tsv", "tfrecord")
_BLOCK = 1 << 24  # bytes read at a time when scanning a text file


@dataclasses.dataclass(frozen=True)
class Format:
    """How records are laid out in a file and which fields they give.

    Examples:
        >>> from pretrainlib.data.formats import Format
        >>> Format("tsv", text="gloss", label="label").delimiter
        '\\t'
    """

    name: str
    text: str | int | None = None  # JSON field / column / feature holding the text
    label: str | int | None = None  # the one holding the label, if any
    per_file: bool = False  # "text" only: the whole file is one document

    @property
    def delimiter(self) -> str:
        return "\t" if self.name == "tsv" else ","


@dataclasses.dataclass
class FileIndex:
    """What one pass over a file found: records, chunk offsets, labels.

    Examples:
        >>> import pathlib, tempfile
        >>> from pretrainlib.data import formats
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = path.write_text("one\\n\\ntwo\\nthree\\n")
        >>> found = formats.index(str(path), formats.Format("text"), chunk=2)
        >>> found.records, found.offsets.tolist(), found.counts.tolist()
        (3, [0, 9, 15], [2, 1])
        >>> formats.read(str(path), formats.Format("text"), 9, 15)
        (['three'], None)
    """

    path: str
    records: int
    offsets: np.ndarray  # int64 [chunks + 1]: byte offset of each chunk's first record, then the end
    counts: np.ndarray  # int64 [chunks]: records per chunk
    labels: dict  # label value -> line of its first record (1-based)

    def to_arrays(self) -> dict:
        return {"records": np.int64(self.records), "offsets": self.offsets,
                "counts": self.counts, "labels": np.array(json.dumps(
                    [[k, v] for k, v in self.labels.items()]))}

    @classmethod
    def from_arrays(cls, path: str, arrays) -> "FileIndex":
        return cls(path, int(arrays["records"]), arrays["offsets"], arrays["counts"],
                   {k: v for k, v in json.loads(str(arrays["labels"]))})


class RecordError(ValueError):
    """A record that cannot be read as the format says, with its file and line.

    Examples:
        >>> from pretrainlib.data.formats import RecordError
        >>> str(RecordError("data.jsonl", 3, "not valid JSON"))
        'data.jsonl, line 3: not valid JSON'
    """

    def __init__(self, path: str, line: int | None, message: str):
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {message}")


def index(path: str, fmt: Format, chunk: int) -> FileIndex:
    """Reads `path` once: checks every record and notes every `chunk`-th offset."""
    if fmt.per_file:
        return _index_whole_file(path, fmt)
    if fmt.name == "text":
        return _index_lines(path, chunk)
    if fmt.name == "tfrecord":
        return _index_tfrecord(path, fmt, chunk)
    return _index_parsed(path, fmt, chunk)


def read(path: str, fmt: Format, start: int, end: int, columns=None):
    """The records in bytes [start, end) of `path`: (texts, labels or None)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if fmt.per_file:
        return [data.decode("utf-8")], None
    if fmt.name == "text":
        return [line for line in data.decode("utf-8").splitlines() if line], None
    if fmt.name == "tfrecord":
        records = [_example_fields(r, fmt) for r in _tfrecords(data)]
    elif fmt.name == "jsonl":
        records = [_json_fields(json.loads(line), fmt) for line in data.splitlines()
                   if line.strip()]
    else:
        rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""),
                          delimiter=fmt.delimiter)
        records = [_row_fields(row, columns, fmt) for row in rows if row]
    texts = [text for text, _ in records]
    return texts, ([label for _, label in records] if fmt.label is not None else None)


def header(path: str, fmt: Format) -> list[str]:
    """The column names of a CSV/TSV file (its first row)."""
    with open(path, "rb") as f:
        line = f.readline()
    try:
        return next(csv.reader([line.decode("utf-8")], delimiter=fmt.delimiter))
    except (StopIteration, UnicodeDecodeError):
        raise RecordError(path, 1, "the first row must name the columns") from None


def columns_of(path: str, fmt: Format) -> dict:
    """The positions of the text and label columns in a CSV/TSV file."""
    names = header(path, fmt)
    positions = {}
    for role, column in (("text_column", fmt.text), ("label_column", fmt.label)):
        if column is None:
            continue
        if isinstance(column, int):
            if not 0 <= column < len(names):
                raise RecordError(path, 1, f"`{role}={column}` is out of range: the "
                                  f"file has {len(names)} columns {names}")
            positions[role] = column
        elif column not in names:
            raise RecordError(path, 1, f"no column `{role}={column!r}`; the columns are "
                              f"{names}")
        else:
            positions[role] = names.index(column)
    return positions


# === Indexing ===
def _index_whole_file(path, fmt):
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise RecordError(path, None, "the file is empty (with document='file' every file "
                          "is one document)")
    _decoded(path, data, 0)
    return FileIndex(path, 1, np.array([0, len(data)], "int64"), np.array([1], "int64"), {})


def _index_lines(path, chunk):
    """Offsets of every `chunk`-th non-empty line, with a vectorized newline scan of
    blocks of the file (memory: a block and the offsets kept, not one per line)."""
    firsts, records, position, line, pending = [], 0, 0, 1, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            data = pending + block
            if not block:  # the last line, without its newline
                cut = len(data)
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    pending = data
                    continue
            part, pending = data[:cut], data[cut:]
            if not part:
                break
            _decoded(path, part, line)
            array = np.frombuffer(part, np.uint8)
            ends = np.flatnonzero(array == 10)
            if not block and (len(ends) == 0 or ends[-1] != len(part) - 1):
                ends = np.append(ends, len(part))  # unterminated last line
            begins = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else ends
            lengths = ends - begins
            carriage = (lengths == 1) & (array[np.minimum(begins, len(part) - 1)] == 13)
            starts = begins[(lengths > 0) & ~carriage]
            # the records numbered 0, chunk, 2 * chunk, ... of the whole file
            firsts.append(starts[(-records) % chunk::chunk] + position)
            records += len(starts)
            position += len(part)
            line += len(ends)
            if not block:
                break
    if records == 0:
        raise RecordError(path, None, "the file holds no text (no non-empty line)")
    first = np.concatenate(firsts).astype("int64")
    counts = np.full(len(first), chunk, "int64")
    counts[-1] = records - chunk * (len(first) - 1)
    return FileIndex(path, records, np.append(first, position).astype("int64"), counts, {})


def _index_parsed(path, fmt, chunk):
    """JSON Lines and CSV/TSV: every record parsed once (checked), offsets noted."""
    starts, labels, kinds = [], {}, set()
    columns = columns_of(path, fmt) if fmt.name in ("csv", "tsv") else None
    with open(path, "rb") as f:
        reader = _LineReader(path, f)
        if columns is not None:
            next(reader)  # the header
            rows = csv.reader(reader, delimiter=fmt.delimiter)
        else:
            rows = reader
        while True:
            start = reader.offset
            try:
                record = next(rows)
            except StopIteration:
                break
            except csv.Error as error:
                raise RecordError(path, reader.line, f"not valid {fmt.name.upper()}: "
                                  f"{error}") from None
            if columns is not None:
                if not record:
                    continue
                text, label = _row_fields(record, columns, fmt, path, reader.line)
            else:
                if not record.strip():
                    continue
                try:
                    value = json.loads(record)
                except ValueError as error:
                    raise RecordError(path, reader.line, f"not valid JSON ({error})") from None
                text, label = _json_fields(value, fmt, path, reader.line)
            starts.append(start)
            if fmt.label is not None:
                kinds.add(_kind(label))
                labels.setdefault(label, reader.line)
        end = reader.offset
    if not starts:
        raise RecordError(path, None, "the file holds no record")
    _check_kinds(path, kinds, labels)
    return _chunked(path, np.array(starts, "int64"), end, chunk, labels)


def _index_tfrecord(path, fmt, chunk):
    starts, labels, kinds = [], {}, set()
    with open(path, "rb") as f:
        number = 0
        while True:
            start = f.tell()
            head = f.read(12)
            if not head:
                break
            number += 1
            (length,) = struct.unpack("<Q", head[:8]) if len(head) == 12 else (-1,)
            record = f.read(length + 4) if length >= 0 else b""
            if length < 0 or len(record) != length + 4:
                raise RecordError(path, None, f"record {number} is truncated (at byte "
                                  f"{start}); the file is cut short or not a TFRecord")
            text, label = _example_fields(record[:length], fmt, path, number)
            starts.append(start)
            if fmt.label is not None:
                kinds.add(_kind(label))
                labels.setdefault(label, number)
        end = f.tell()
    if not starts:
        raise RecordError(path, None, "the file holds no record")
    _check_kinds(path, kinds, labels)
    return _chunked(path, np.array(starts, "int64"), end, chunk, labels)


def _chunked(path, starts, end, chunk, labels):
    first = starts[::chunk]
    counts = np.diff(np.append(np.arange(0, len(starts), chunk), len(starts)))
    return FileIndex(path, len(starts), np.append(first, end).astype("int64"),
                     counts.astype("int64"), labels)


class _LineReader:
    """Lines of a binary file as str, with the byte offset and line number reached."""

    def __init__(self, path, f):
        self.path, self.f, self.offset, self.line = path, f, 0, 0

    def __iter__(self):
        return self

    def __next__(self):
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.line += 1
        text = _decoded(self.path, raw, self.line)
        self.offset += len(raw)
        return text


def _decoded(path, data: bytes, line: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = line + data[:error.start].count(b"\n") if line else None
        raise RecordError(path, bad, f"bytes that are not UTF-8 ({error.reason} at "
                          f"{data[error.start:error.start + 4]!r}); re-encode the file "
                          "as UTF-8") from None


# === Fields ===
def _json_fields(value, fmt, path=None, line=None):
    if not isinstance(value, dict):
        raise RecordError(path, line, f"a JSON object is expected, not {type(value).__name__}")
    def missing(role, key):
        raise RecordError(path, line, f"no field `{role}={key!r}`; the record has "
                          f"{sorted(value)[:10]}")

    text, label = _fields(fmt, value, value.get, missing)
    if not isinstance(text, str):
        raise RecordError(path, line, f"field {fmt.text!r} must be a string, not "
                          f"{type(text).__name__}")
    if fmt.label is not None:
        _check_label(label, path, line)
    return text, label


def _fields(fmt, record, value, missing):
    """(text, label) of a record: `value(key)` of each key `fmt` names (None where it
    names none); `missing(role, key)` raises for a key the record lacks."""
    out = []
    for role, key in (("text_field", fmt.text), ("label_field", fmt.label)):
        if key is not None and key not in record:
            missing(role, key)
        out.append(None if key is None else value(key))
    return out


def _row_fields(row, columns, fmt, path=None, line=None):
    needed = max(columns.values()) + 1
    if len(row) < needed:
        raise RecordError(path, line, f"the row has {len(row)} fields; column {needed - 1} "
                          "is missing (check the delimiter and the quoting)")
    text = row[columns["text_column"]]
    if fmt.label is None:
        return text, None
    label = row[columns["label_column"]]
    if label == "":
        raise RecordError(path, line, f"the label column {fmt.label!r} is empty")
    return text, _number_or_text(label)


def _example_fields(record: bytes, fmt, path=None, number=None):
    import tensorflow as tf  # protobuf parsing, only for TFRecord files

    try:
        features = tf.train.Example.FromString(record).features.feature
    except Exception:
        raise RecordError(path, None, f"record {number} is not a tf.train.Example") from None
    def missing(role, key):
        raise RecordError(path, None, f"record {number} has no feature `{role}={key!r}`; "
                          f"it has {sorted(features)[:10]}")

    def value(key):
        feature = features[key]
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if len(values) != 1:
            raise RecordError(path, None, f"feature {key!r} of record {number} must hold "
                              f"one value, not {len(values)}")
        return values[0].decode("utf-8") if isinstance(values[0], bytes) else values[0]

    text, label = _fields(fmt, features, value, missing)
    if not isinstance(text, str):
        raise RecordError(path, None, f"feature {fmt.text!r} must be a bytes (string) "
                          "feature")
    return text, label


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _kind(label) -> str:
    if isinstance(label, str):
        return "str"
    return "float" if isinstance(label, float) else "int"


def _check_label(label, path, line):
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise RecordError(path, line, "a label must be a string or a number, not "
                          f"{type(label).__name__}: {label!r}")


def _check_kinds(path, kinds, labels):
    if "str" in kinds and len(kinds) > 1:
        number = next(v for k, v in labels.items() if not isinstance(k, str))
        text = next(v for k, v in labels.items() if isinstance(k, str))
        raise RecordError(path, max(number, text), "the label column mixes numbers (line "
                          f"{number}) and names (line {text}); use one type")


# === TFRecord framing ===
def _tfrecords(data: bytes):
    """The records of TFRecord bytes (length, length CRC, data, data CRC), checked
    when the file was indexed."""
    position = 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position:position + 8])
        yield data[position + 12:position + 12 + length]
        position += 16 + length
