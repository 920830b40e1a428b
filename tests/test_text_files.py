"""Text from files and streams: every format gives the in-memory path's token ids,
epochs stream from disk in keyed orders, labels become a vocabulary, bad files fail
naming the file and line."""

import csv
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib.data import files


@pytest.fixture(autouse=True)
def index_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINLIB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def corpus(wordnet):
    """600 real glosses with their supersense names."""
    sample = wordnet.train.sample(600, seed=0)
    texts = [t.replace("\n", " ") for t in sample.texts]
    names = [wordnet.class_names[y] for y in sample.labels]
    return texts, names


def ids(dataset):
    batches = [b[0] if isinstance(b, tuple) else b for b in dataset]
    return np.concatenate([b["token_ids"].numpy() for b in batches])


def labels_of(dataset):
    return np.concatenate([y.numpy() for _, y in dataset])


def write(folder, name, content):
    path = pathlib.Path(folder) / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def write_tfrecord(path, texts, labels=None):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, text in enumerate(texts):
            feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[text.encode()]))}
            if labels is not None:
                feature["label"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[labels[i].encode()]))
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return path


def write_all_formats(folder, texts, names):
    """The same labeled corpus in every format, split over two files each."""
    half = len(texts) // 2
    parts = [(texts[:half], names[:half]), (texts[half:], names[half:])]
    out = {}
    for i, (t, n) in enumerate(parts):
        write(folder, f"plain{i}.txt", "\n".join(t) + "\n")
        write(folder, f"records{i}.jsonl", "".join(
            json.dumps({"text": a, "label": b, "id": j}) + "\n" for j, (a, b) in enumerate(zip(t, n))))
        for suffix, delimiter in (("csv", ","), ("tsv", "\t")):
            with open(pathlib.Path(folder) / f"table{i}.{suffix}", "w", newline="") as f:
                writer = csv.writer(f, delimiter=delimiter)
                writer.writerow(["id", "label", "text"])
                writer.writerows([j, b, a] for j, (a, b) in enumerate(zip(t, n)))
        write_tfrecord(pathlib.Path(folder) / f"examples{i}.tfrecord", t, n)
    out["text"] = dict(texts=str(pathlib.Path(folder) / "plain*.txt"))
    out["jsonl"] = dict(texts=str(pathlib.Path(folder) / "records*.jsonl"), label_field="label")
    out["csv"] = dict(texts=str(pathlib.Path(folder) / "table*.csv"), label_column="label")
    out["tsv"] = dict(texts=str(pathlib.Path(folder) / "table*.tsv"), label_column="label")
    out["tfrecord"] = dict(texts=str(pathlib.Path(folder) / "examples*.tfrecord"),
                           label_field="label")
    return out


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv", "tsv", "tfrecord"])
def test_each_format_gives_the_token_ids_of_the_in_memory_path(fmt, tmp_path, tokenizer,
                                                              corpus):
    texts, names = corpus
    arguments = write_all_formats(tmp_path, texts, names)[fmt]
    memory = pl.data.text_dataset(texts, tokenizer, labels=None if fmt == "text" else names,
                                  batch_size=16, sequence_length=24, shuffle=False)
    from_files = pl.data.text_dataset(tokenizer=tokenizer, batch_size=16, sequence_length=24,
                                      shuffle=False, **arguments)
    assert int(from_files.cardinality()) == int(memory.cardinality()) == 38
    np.testing.assert_array_equal(ids(from_files), ids(memory))
    if fmt != "text":
        assert from_files.class_names == memory.class_names == sorted(set(names))
        np.testing.assert_array_equal(labels_of(from_files), labels_of(memory))


def test_one_document_per_file_and_lists_of_paths(tmp_path, tokenizer, corpus):
    texts = corpus[0][:5]
    paths = [write(tmp_path, f"doc{i}.txt", text + "\n") for i, text in enumerate(texts)]
    ds = pl.data.text_dataset(paths, tokenizer, document="file", batch_size=2,
                              sequence_length=24, shuffle=False)
    expected = pl.data.text_dataset([t + "\n" for t in texts], tokenizer, batch_size=2,
                                    sequence_length=24, shuffle=False)
    np.testing.assert_array_equal(ids(ds), ids(expected))
    # a directory: every file of a known suffix under it
    np.testing.assert_array_equal(ids(pl.data.text_dataset(
        tmp_path, tokenizer, document="file", batch_size=2, sequence_length=24,
        shuffle=False)), ids(expected))


def test_file_epochs_are_keyed_permutations_that_resume_at_any_batch(tmp_path, tokenizer,
                                                                     corpus):
    texts = corpus[0]
    write(tmp_path, "a.txt", "\n".join(texts[:250]) + "\n")
    write(tmp_path, "b.txt", "\n".join(texts[250:]))
    ds = pl.data.text_dataset(str(tmp_path / "*.txt"), tokenizer, batch_size=8,
                              sequence_length=24, seed=3, buffer_size=100)
    source = pl.epochs.source_of(ds)
    epoch_1 = [b["token_ids"].numpy() for b in source.epoch(1)]
    resumed = [b["token_ids"].numpy() for b in source.stream(1, 40).take(len(epoch_1) - 40)]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(epoch_1[40:]))
    epoch_0 = np.concatenate([b["token_ids"].numpy() for b in source.epoch(0)])
    in_order = ids(pl.data.text_dataset(texts, tokenizer, batch_size=8, sequence_length=24,
                                        shuffle=False))
    assert sorted(map(tuple, epoch_0.tolist())) == sorted(map(tuple, in_order.tolist()))
    assert not np.array_equal(epoch_0, np.concatenate(epoch_1))
    assert not np.array_equal(epoch_0, in_order)
    # the same seed, rebuilt: the same epochs
    again = pl.epochs.source_of(pl.data.text_dataset(
        str(tmp_path / "*.txt"), tokenizer, batch_size=8, sequence_length=24, seed=3,
        buffer_size=100))
    np.testing.assert_array_equal(ids(again.epoch(1)), np.concatenate(epoch_1))


def test_a_bounded_buffer_shuffles_within_windows(tmp_path, tokenizer):
    write(tmp_path, "n.txt", "".join(f"line {i}\n" for i in range(5000)))
    corpus = files.TextFiles(tmp_path / "n.txt")
    for buffer_size, chunks_per_window in ((1000, 1), (2048, 2)):
        source = files.FileRecords(corpus, batch_size=100, seed=0, buffer_size=buffer_size)
        order = np.array([int(t.split()[1]) for b in source.epoch(0)
                          for t in b.numpy().astype(str)])
        assert sorted(order) == list(range(5000))
        # the first window: whole chunks of the index (1,024 records), shuffled
        first = order[:files.CHUNK * chunks_per_window]
        assert len(set((first // files.CHUNK).tolist())) == chunks_per_window
        assert not (np.diff(first) > 0).all()


def test_streamed_packing_equals_in_memory_packing(tokenizer, corpus):
    texts = corpus[0]
    for reset in (False, True):
        memory = pl.data.text_dataset(texts, tokenizer, batch_size=4, sequence_length=32,
                                      pack=True, reset_attention=reset, shuffle=False)
        stream = pl.data.text_dataset(tf.data.Dataset.from_tensor_slices(texts), tokenizer,
                                      batch_size=4, sequence_length=32, pack=True,
                                      reset_attention=reset, shuffle=False)
        for key in ("token_ids", "padding_mask"):
            np.testing.assert_array_equal(
                np.concatenate([b[key].numpy() for b in stream]),
                np.concatenate([b[key].numpy() for b in memory]))


@pytest.mark.slow
def test_packed_files_give_the_rows_of_in_memory_packing_and_resume_at_any_row(
        tmp_path, tokenizer, corpus):
    texts = corpus[0]
    for i in range(4):  # four files: four chunks, so several windows
        write(tmp_path, f"part{i}.txt", "\n".join(texts[i * 150:(i + 1) * 150]))
    arguments = dict(batch_size=4, sequence_length=32, pack=True, reset_attention=True)
    ds = pl.data.text_dataset(str(tmp_path / "part*.txt"), tokenizer, shuffle=False,
                              buffer_size=100, **arguments)
    memory = pl.data.text_dataset(texts, tokenizer, shuffle=False, **arguments)
    source = pl.epochs.source_of(ds)
    run = list(source.run_stream(None, 0, 0).take(int(memory.cardinality()) + 5))
    for key in ("token_ids", "padding_mask"):
        np.testing.assert_array_equal(
            np.concatenate([b[key].numpy() for b in run[:len(run) - 5]]),
            np.concatenate([b[key].numpy() for b in memory]))
    # an estimated epoch, within a few batches of the real one
    assert abs(int(ds.cardinality()) - int(memory.cardinality())) <= 0.2 * int(
        memory.cardinality())
    shuffled = pl.epochs.source_of(pl.data.text_dataset(
        str(tmp_path / "part*.txt"), tokenizer, seed=5, buffer_size=100, **arguments))
    total = int(memory.cardinality()) + 20
    stream = [b["token_ids"].numpy() for b in shuffled.run_stream(None, 2, 0).take(total)]
    for done in (1, 37, total // 2, total - 10):  # in and across windows, into epoch 3
        position = shuffled.position_after(done)
        resumed = [b["token_ids"].numpy()
                   for b in shuffled.run_stream(position, 2, done).take(total - done)]
        np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(stream[done:]))
    assert shuffled.position_after(total - 10)["epoch"] == 3
    assert not np.array_equal(np.concatenate(stream[:50]), np.concatenate(
        [b["token_ids"].numpy() for b in run[:50]]))  # shuffled differs from file order


def test_a_dataset_of_strings_and_labels_streams(tokenizer, corpus):
    texts, names = corpus
    vocabulary = sorted(set(names))
    stream = pl.data.text_dataset(tf.data.Dataset.from_tensor_slices((texts, names)),
                                  tokenizer, batch_size=16, sequence_length=24,
                                  shuffle=False, label_vocabulary=vocabulary)
    memory = pl.data.text_dataset(texts, tokenizer, labels=names, batch_size=16,
                                  sequence_length=24, shuffle=False)
    np.testing.assert_array_equal(ids(stream), ids(memory))
    np.testing.assert_array_equal(labels_of(stream), labels_of(memory))
    assert stream.class_names == vocabulary
    shuffled = pl.data.text_dataset(tf.data.Dataset.from_tensor_slices(texts), tokenizer,
                                    batch_size=16, sequence_length=24, seed=0)
    assert sorted(map(tuple, ids(shuffled).tolist())) == sorted(
        map(tuple, ids(memory).tolist()))


def test_string_labels_use_a_given_vocabulary(tokenizer):
    ds = pl.data.text_dataset(["a dog", "a cat"], tokenizer, labels=["dog", "cat"],
                              label_vocabulary=["dog", "cat", "bird"], shuffle=False)
    assert labels_of(ds).tolist() == [0, 1] and ds.class_names == ["dog", "cat", "bird"]
    named_ids = pl.data.text_dataset(["a dog", "a cat"], tokenizer, labels=[1, 0],
                                     label_vocabulary=["dog", "cat"], shuffle=False)
    assert named_ids.class_names == ["dog", "cat"]
    with pytest.raises(ValueError, match="'cow'.*not in the label vocabulary"):
        pl.data.text_dataset(["a dog", "a cow"], tokenizer, labels=["dog", "cow"],
                             label_vocabulary=["dog", "cat"])


def test_the_index_is_cached_and_rebuilt_when_the_file_changes(tmp_path, monkeypatch):
    path = write(tmp_path, "a.jsonl", '{"text": "one"}\n{"text": "two"}\n')
    assert files.TextFiles(path).records == 2
    calls = []
    original = files.formats.index
    monkeypatch.setattr(files.formats, "index",
                        lambda *a: calls.append(a) or original(*a))
    assert files.TextFiles(path).records == 2 and not calls  # read from the cache
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three"}\n')
    assert files.TextFiles(path).records == 3 and len(calls) == 1


def test_a_finetuner_keeps_the_class_names_through_save_and_load(tmp_path, tokenizer,
                                                                  tiny_encoder, corpus):
    texts, names = corpus
    arguments = write_all_formats(tmp_path, texts, names)["csv"]
    ds = pl.data.text_dataset(tokenizer=tokenizer, batch_size=32, sequence_length=24,
                              seed=0, **arguments)
    ft = pl.FineTuner(tiny_encoder(max_sequence_length=24),
                      pl.heads.Classifier(len(ds.class_names)))
    ft.compile(learning_rate=1e-3)
    ft.fit(ds, epochs=1, verbose=0)
    assert ft.class_names == sorted(set(names))
    ft.save(tmp_path / "ft.keras")
    loaded = keras.saving.load_model(tmp_path / "ft.keras")
    assert loaded.class_names == ft.class_names
    report = pl.Evaluator().evaluate(loaded, ds)
    assert report.names() == ft.class_names
    other = pl.data.text_dataset(texts[:40], tokenizer, labels=names[:40], sequence_length=24,
                                 label_vocabulary=list(reversed(ft.class_names)))
    with pytest.raises(ValueError, match="label_vocabulary=ft.class_names"):
        loaded.fit(other, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="more than the head's num_classes=2"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2), class_names=["a", "b", "c"])


# === Bad files: each error names the file and line ===
BAD = [
    ("a.jsonl", '{"text": "fine"}\n{"text": broken}\n', {}, r"a\.jsonl, line 2: not valid JSON"),
    ("a.jsonl", '{"text": "fine"}\n{"body": "x"}\n', {}, r"line 2: no field `text_field='text'`"),
    ("a.jsonl", '{"text": 3}\n', {}, r"line 1: field 'text' must be a string"),
    ("a.jsonl", '["text"]\n', {}, r"line 1: a JSON object is expected"),
    ("a.txt", b"fine\nbad \xff byte\n", {}, r"a\.txt, line 2: bytes that are not UTF-8"),
    ("a.txt", "\n\n", {}, r"a\.txt: the file holds no text"),
    ("a.csv", "text,label\nfine,x\n", {"label_column": "category"},
     r"no column `label_column='category'`; the columns are \['text', 'label'\]"),
    ("a.csv", "text,label\nfine,x\nshort\n", {"label_column": "label"},
     r"line 3: the row has 1 fields"),
    ("a.csv", "text,label\nfine,x\nmore,\n", {"label_column": "label"},
     r"line 3: the label column 'label' is empty"),
    ("a.csv", "text,label\nfine,x\nmore,3\n", {"label_column": "label"},
     r"mixes numbers \(line 3\) and names \(line 2\)"),
    ("a.jsonl", '{"text": "a", "label": [1]}\n', {"label_field": "label"},
     r"line 1: a label must be a string or a number"),
    ("a.jsonl", '{"text": "a", "label": "x"}\n', {"label_field": "label",
                                                  "label_vocabulary": ["y"]},
     r"a\.jsonl, line 1: label 'x' is not in the label vocabulary \['y'\]"),
    ("a.jsonl", '{"text": "a", "label": -1}\n', {"label_field": "label"},
     r"line 1: class id -1 is negative"),
    ("a.csv", "text\nfine\n", {"text_field": "text"}, r"`text_field` does not apply to csv"),
    ("a.txt", "fine\n", {"label_field": "label"}, r"`label_field` does not apply to text"),
    ("a.jsonl", '{"text": "a"}\n', {"document": "file"}, r"`document='file'` is for plain"),
    ("a.dat", "fine\n", {}, r"Cannot tell the format of .*a\.dat.*pass `format=`"),
]


@pytest.mark.parametrize("name, content, arguments, message", BAD)
def test_bad_files_fail_naming_the_file_and_line(name, content, arguments, message, tmp_path,
                                                 tokenizer):
    path = write(tmp_path, name, content)
    with pytest.raises(ValueError, match=message):
        pl.data.text_dataset(str(path), tokenizer, **arguments)


def test_truncated_tfrecord_and_missing_feature(tmp_path, tokenizer):
    path = write_tfrecord(tmp_path / "a.tfrecord", ["one", "two"])
    write(tmp_path, "cut.tfrecord", path.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"cut\.tfrecord: record 2 is truncated"):
        pl.data.text_dataset(str(tmp_path / "cut.tfrecord"), tokenizer)
    with pytest.raises(ValueError, match=r"record 1 has no feature `label_field='label'`"):
        pl.data.text_dataset(str(path), tokenizer, label_field="label")


def test_paths_that_name_nothing_and_texts_that_are_paths(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        pl.data.text_dataset(str(tmp_path / "*.txt"), tokenizer)
    with pytest.raises(FileNotFoundError, match="No such file"):
        pl.data.text_dataset(str(tmp_path / "missing.txt"), tokenizer)
    with pytest.raises(FileNotFoundError, match="holds no file with a known suffix"):
        pl.data.text_dataset(tmp_path, tokenizer)
    a = write(tmp_path, "a.txt", "one\n")
    b = write(tmp_path, "b.jsonl", '{"text": "two"}\n')
    with pytest.raises(ValueError, match="mix formats"):
        pl.data.text_dataset([a, b], tokenizer)
    with pytest.raises(ValueError, match="all name files.*pathlib.Path"):
        pl.data.text_dataset([str(a)], tokenizer)
    with pytest.raises(ValueError, match="files carry their own fields"):
        pl.data.text_dataset(str(a), tokenizer, labels=[0])
    with pytest.raises(ValueError, match="`label_field` is for files"):
        pl.data.text_dataset(["one text"], tokenizer, label_field="label")
    with pytest.raises(ValueError, match="cannot carry labels"):
        pl.data.text_dataset(str(b), tokenizer, label_field="text", pack=True)


def test_bad_streams(tokenizer):
    with pytest.raises(ValueError, match=r"single strings \(unbatched\)"):
        pl.data.text_dataset(tf.data.Dataset.from_tensor_slices(["a", "b"]).batch(2),
                             tokenizer)
    with pytest.raises(ValueError, match="pass `label_vocabulary`"):
        pl.data.text_dataset(tf.data.Dataset.from_tensor_slices((["a"], ["x"])), tokenizer)
    ds = pl.data.text_dataset(tf.data.Dataset.from_tensor_slices((["a"], ["x"])), tokenizer,
                              label_vocabulary=["y"], shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in `label_vocabulary`"):
        list(ds)


def test_file_labels_are_checked_from_the_index_without_a_pass(tmp_path, tokenizer,
                                                               tiny_encoder, monkeypatch):
    path = write(tmp_path, "a.jsonl", "".join(
        json.dumps({"text": f"text {i}", "label": i % 3}) + "\n" for i in range(30)))
    ds = pl.data.text_dataset(str(path), tokenizer, label_field="label", sequence_length=16)
    assert pl.epochs.source_of(ds).largest_label() == 2
    reads = []
    monkeypatch.setattr(files.TextFiles, "read", lambda *a: reads.append(a))
    ft = pl.FineTuner(tiny_encoder(max_sequence_length=16), pl.heads.Classifier(2))
    ft.compile()
    with pytest.raises(ValueError, match="label 2, but the head has num_classes=2"):
        ft.fit(ds, epochs=1, verbose=0)
    assert not reads  # refused before reading a record


def test_a_stream_of_unknown_length_needs_steps_per_epoch(tokenizer, tiny_encoder, corpus):
    stream = pl.data.text_dataset(tf.data.Dataset.from_tensor_slices(corpus[0]), tokenizer,
                                  batch_size=8, sequence_length=32, pack=True)
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    with pytest.raises(ValueError, match="no known length.*steps_per_epoch="):
        pre.fit(stream, epochs=1, verbose=0)
    history = pre.fit(stream, epochs=1, steps_per_epoch=3, verbose=0)
    assert len(history.history["loss"]) == 1


def test_the_line_index_cuts_chunks_right_whatever_the_block_boundaries(tmp_path,
                                                                         monkeypatch):
    """Random files (empty lines, CRLF, no final newline) indexed with tiny read
    blocks: every chunk reads back its records, in order, none lost."""
    rng = np.random.default_rng(0)
    fmt = files.formats.Format("text")
    for trial in range(40):
        lines = ["x" * int(rng.integers(0, 4)) for _ in range(int(rng.integers(1, 60)))]
        lines += ["last"]
        ending = ["\n", "\r\n"][trial % 2]
        path = write(tmp_path, "a.txt", ending.join(lines) + (ending if trial % 3 else ""))
        monkeypatch.setattr(files.formats, "_BLOCK", int(rng.integers(1, 20)))
        index = files.formats.index(str(path), fmt, chunk=int(rng.integers(1, 7)))
        chunks = [files.formats.read(str(path), fmt, int(index.offsets[c]),
                                     int(index.offsets[c + 1]))[0]
                  for c in range(len(index.counts))]
        assert [len(c) for c in chunks] == index.counts.tolist()
        assert sum(chunks, []) == [line for line in lines if line]


def test_the_remaining_error_paths_name_their_argument(tmp_path, tokenizer):
    labeled = write(tmp_path, "a.jsonl", "".join(
        json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(30)))
    floats = write(tmp_path, "f.jsonl", '{"text": "a", "y": 0.5}\n{"text": "b", "y": 1.5}\n')
    plain = write(tmp_path, "p.txt", "one\ntwo\n")
    cases = [
        (lambda: pl.data.text_dataset(str(floats), tokenizer, label_field="y",
                                      label_vocabulary=["a"]), "float labels are regression"),
        (lambda: pl.data.text_dataset(["a", "b"], tokenizer, labels=[0.5, 1.5],
                                      label_vocabulary=["a"]), "float labels are regression"),
        (lambda: pl.data.text_dataset(str(labeled), tokenizer, label_field="label",
                                      label_vocabulary=["only"]),
         r"a\.jsonl, line 2: class id 1, but `label_vocabulary` names 1 classes"),
        (lambda: pl.data.text_dataset(["a", "b"], tokenizer, labels=[0, 3],
                                      label_vocabulary=["x", "y"]),
         "class id 3, but `label_vocabulary` names 2"),
        (lambda: pl.data.text_dataset(str(plain), tokenizer, label_vocabulary=["x"]),
         "`label_vocabulary` needs labels"),
        (lambda: pl.data.text_dataset(["a"], tokenizer, label_vocabulary=["x"]),
         "names the classes of `labels`; pass labels"),
        (lambda: pl.data.text_dataset(pl.data.TextFiles(plain), tokenizer, format="text"),
         "`format` goes to the TextFiles itself"),
        (lambda: pl.data.text_dataset(["a", "b"], tokenizer, labels=["x", "x"],
                                      label_vocabulary=["x", "x"]), "names a class twice"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    source = files.FileRecords(files.TextFiles(plain), batch_size=3)
    with pytest.raises(ValueError, match="`batch_size=3` must divide by the 2 input pipelines"):
        source.shard(0, 2)
    with pytest.raises(ValueError, match="fewer than the 2 workers"):
        files.FileRecords(files.TextFiles(plain), batch_size=4).shard(0, 2)
    packed = pl.epochs.source_of(pl.data.text_dataset(str(plain), tokenizer, pack=True,
                                                      batch_size=1, sequence_length=4))
    with pytest.raises(TypeError, match="resumed from a recorded position"):
        packed.stream(0, 1)


def test_a_file_changed_after_indexing_is_refused(tmp_path, monkeypatch):
    path = write(tmp_path, "a.txt", "one\ntwo\nthree\n")
    corpus = files.TextFiles(path)
    path.write_text("one\n\n\n\n\n\n\n\n")  # fewer records in the indexed bytes
    with pytest.raises(ValueError, match=r"a\.txt changed after it was indexed"):
        corpus.read(0)
