"""Your own data at scale: a multi-gigabyte corpus and an image folder, streamed.

    python benchmarks/your_data.py build --corpus /tmp/corpus --gigabytes 2
    python benchmarks/your_data.py run --corpus /tmp/corpus \\
        --out docs/results/benchmark_your_data.json

`build` writes the corpus: shuffled, lightly perturbed repetitions of the bundled
WordNet glosses (a word dropped or two swapped), one per line, in files of about
100 MB, until `--gigabytes`; and the 25,000 bundled Fashion-MNIST images as PNG
files in class folders. It measures the machinery, not learning.

`run`, in one process whose peak resident memory it reports (the corpus size
beside it):

1. indexes the corpus (first time, then from the cache);
2. trains an 8,000-token WordPiece tokenizer and co-occurrence embeddings, each
   from a sample of `--sample` texts spread over the corpus;
3. runs `--steps` masked-LM steps (TextEncoder 2 x 128, batch 32, 128-token packed
   rows) streaming from the files, with a checkpoint every 10 steps; times the
   input pipeline alone over the same kind of batches (ratio to the train steps);
4. resumes that run from its checkpoints at step 10 and at step 900, alternated
   `--rounds` times: seconds from calling `fit` to the end of the first trained
   step, median;
5. side by side, arms alternated for `--rounds` rounds, medians: batches per second
   of `pl.data.text_dataset` over the files vs a hand-written `TextLineDataset`
   pipeline (shuffle buffer, batch, tokenize); texts per second of
   `text_dataset(folder, document="file")` vs
   `keras.utils.text_dataset_from_directory` (tokenized the same way) on 20,000
   one-document files; images per second of `pl.data.image_folder` vs
   `keras.utils.image_dataset_from_directory` on the PNG folder (decode +
   RandomTranslation) and the ConvNet's train step rate on it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import resource
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py, beside this script)

FILE_BYTES = 100 * 2**20  # bytes per corpus file


# === build ===
def build(corpus: pathlib.Path, gigabytes: float) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    text_dir = corpus / "text"
    text_dir.mkdir(exist_ok=True)
    glosses = [g.replace("\n", " ") for g in pl.datasets.wordnet_supersenses().unlabeled]
    rng = random.Random(0)
    target, written, part = int(gigabytes * 2**30), 0, 0
    while written < target:
        path = text_dir / f"part-{part:04d}.txt"
        if path.exists():
            written += path.stat().st_size
            part += 1
            continue
        lines, size = [], 0
        while size < min(FILE_BYTES, target - written):
            rng.shuffle(glosses)
            for gloss in glosses:
                words = gloss.split()
                if len(words) > 3:
                    i = rng.randrange(len(words) - 1)
                    if rng.random() < 0.5:
                        del words[i]
                    else:
                        words[i], words[i + 1] = words[i + 1], words[i]
                line = " ".join(words)
                lines.append(line)
                size += len(line) + 1
        path.write_text("\n".join(lines) + "\n")
        written += path.stat().st_size
        part += 1
        print(f"{path.name}: {written / 2**30:.2f} GB", flush=True)
    docs = corpus / "docs"  # 20,000 one-document files in 4 class folders
    if not docs.exists():
        for i, gloss in enumerate(glosses[:20000]):
            folder = docs / f"class_{i % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.txt").write_text(gloss)
    images = corpus / "images"
    if not images.exists():
        fm = pl.datasets.fashion_mnist()
        index = 0
        for part in (fm.train, fm.validation, fm.test):
            for image, label in zip(part.images, part.labels):
                folder = images / part.class_names[label].replace("/", "-")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{index:05d}.png").write_bytes(
                    tf.io.encode_png(image[..., None]).numpy())
                index += 1
        print(f"images: {index} PNG files", flush=True)


# === run ===
def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KB on Linux


def rate(dataset, batches: int) -> float:
    iterator = iter(dataset)
    next(iterator)  # the first batch pays for tracing and the first window
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


class FirstStep(keras.callbacks.Callback):
    """Stops `fit` after its first trained step, noting when that step ended."""

    def on_train_batch_end(self, batch, logs=None):
        self.ended = time.perf_counter()
        self.model.stop_training = True


class BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


class KeepCheckpoints(keras.callbacks.Callback):
    """Copies the checkpoints of the steps in `steps` aside as they are written."""

    def __init__(self, folder, steps, into):
        super().__init__()
        self.folder, self.steps, self.into = folder, steps, into

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        source = self.folder / f"step-{step:06d}"
        if step in self.steps and source.exists():
            target = self.into / f"at-{step}" / source.name
            shutil.copytree(source, target, dirs_exist_ok=True)


def encoder(tokenizer):
    return pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=2, hidden_dim=128,
                                    num_heads=4, intermediate_dim=256,
                                    max_sequence_length=128)


def run(args) -> dict:
    corpus = pathlib.Path(args.corpus)
    files = str(corpus / "text" / "*.txt")
    size = sum(p.stat().st_size for p in (corpus / "text").glob("*.txt"))
    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["PRETRAINLIB_CACHE"] = str(work / "cache")
    result = {"corpus_gb": size / 2**30, "date": time.strftime("%Y-%m-%d")}

    start = time.perf_counter()
    texts = pl.data.TextFiles(files)
    result["index_seconds_first"] = time.perf_counter() - start
    start = time.perf_counter()
    pl.data.TextFiles(files)
    result["index_seconds_cached"] = time.perf_counter() - start
    result["records"] = texts.records
    result["rss_gb_after_index"] = peak_rss_gb()

    start = time.perf_counter()
    tokenizer = pl.text.WordPieceTokenizer.train(texts, vocab_size=8000,
                                                 max_texts=args.sample)
    result["tokenizer_seconds"] = time.perf_counter() - start
    tokenizer.save(str(work / "tokenizer.json"))
    keras.utils.set_random_seed(0)
    backbone = encoder(tokenizer)
    start = time.perf_counter()
    pl.text.init_token_embeddings(backbone, texts, tokenizer, max_texts=args.sample)
    result["cooccurrence_seconds"] = time.perf_counter() - start
    result["rss_gb_after_statistics"] = peak_rss_gb()

    def packed():
        return pl.data.text_dataset(texts, tokenizer, batch_size=32, sequence_length=128,
                                    pack=True, reset_attention=True, seed=0)

    data = packed()
    pre = pl.Pretrainer(backbone, pl.objectives.MaskedLM(tokenizer=tokenizer), seed=0)
    pre.compile(learning_rate=5e-4)
    folder = work / "checkpoints"
    kept, losses = KeepCheckpoints(folder, {10, 900}, work), BatchLosses()
    start = time.perf_counter()
    pre.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0, callbacks=[
        pl.training.Checkpoint(folder, every_steps=10, keep=2), kept, losses])
    train_seconds = time.perf_counter() - start
    result["mlm_steps"] = args.steps
    result["mlm_seconds"] = train_seconds
    # Keras reports the running mean of the epoch's loss: first batch, whole run
    result["mlm_loss_first_batch_and_run_mean"] = [losses.losses[0], losses.losses[-1]]
    source = pl.epochs.source_of(data)
    pipeline = rate(source.run_stream(None, 0, 0, record=False), 2000)
    result["train_steps_per_second"] = args.steps / train_seconds
    result["pipeline_batches_per_second"] = pipeline
    result["pipeline_over_train"] = pipeline / result["train_steps_per_second"]
    result["rss_gb_after_training"] = peak_rss_gb()

    resume = {10: [], 900: []}
    for _ in range(args.rounds):
        for at in (10, 900):
            if not (work / f"at-{at}").exists():
                continue
            again = pl.Pretrainer(encoder(tokenizer), pl.objectives.MaskedLM(
                tokenizer=tokenizer), seed=0)
            again.compile(learning_rate=5e-4)
            folder = work / f"resume-{at}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(work / f"at-{at}", folder)
            first = FirstStep()
            start = time.perf_counter()
            again.fit(packed(), epochs=1, steps_per_epoch=args.steps, verbose=0,
                      callbacks=[pl.training.Checkpoint(folder), first])
            resume[at].append(first.ended - start)
    result["resume_seconds_to_first_step"] = {
        f"at step {at}": statistics.median(v) for at, v in resume.items() if v}
    result["rss_gb_peak_text"] = peak_rss_gb()

    result.update(side_by_side(corpus, files, tokenizer, args.rounds))
    result["rss_gb_peak"] = peak_rss_gb()
    return result


def side_by_side(corpus, files, tokenizer, rounds) -> dict:
    def lines():
        paths = sorted(str(p) for p in (corpus / "text").glob("*.txt"))
        return (tf.data.TextLineDataset(tf.data.Dataset.from_tensor_slices(paths)
                                        .shuffle(len(paths), seed=0))
                .shuffle(16384, seed=0).batch(32)
                .map(lambda t: tokenizer.encode(t, 128), num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    def keras_docs():
        ds = keras.utils.text_dataset_from_directory(str(corpus / "docs"), batch_size=32,
                                                     seed=0, verbose=False)
        return ds.map(lambda t, y: (tokenizer.encode(t, 128), y),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    augment = [keras.layers.RandomTranslation(0.1, 0.1)]

    def keras_images():
        ds = keras.utils.image_dataset_from_directory(
            str(corpus / "images"), batch_size=64, image_size=(28, 28),
            color_mode="grayscale", seed=0, verbose=False)
        layer = augment[0]
        return ds.map(lambda x, y: (layer(x / 255.0, training=True), y),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    arms = {
        "text files: pl.data.text_dataset": (lambda: pl.data.text_dataset(
            files, tokenizer, batch_size=32, sequence_length=128, seed=0), 400, 32),
        "text files: TextLineDataset + shuffle + tokenize": (lines, 400, 32),
        "one file per text: pl.data.text_dataset(document='file')": (
            lambda: pl.data.text_dataset(corpus / "docs", tokenizer, document="file",
                                         batch_size=32, sequence_length=128, seed=0), 200, 32),
        "one file per text: keras text_dataset_from_directory": (keras_docs, 200, 32),
        "image folder: pl.data.image_folder + augment": (lambda: pl.data.image_folder(
            corpus / "images", batch_size=64, seed=0, augment=augment), 150, 64),
        "image folder: keras image_dataset_from_directory + augment": (keras_images, 150, 64),
    }
    built = {name: make() for name, (make, _, _) in arms.items()}
    rates = {name: [] for name in arms}
    for _ in range(rounds):
        for name, (_, batches, size) in arms.items():
            rates[name].append(rate(built[name], batches) * size)
    out = {"examples_per_second": {k: statistics.median(v) for k, v in rates.items()}}

    images = built["image folder: pl.data.image_folder + augment"]
    keras.utils.set_random_seed(0)
    ft = pl.FineTuner(pl.backbones.ConvNet(input_shape=(28, 28, 1)),
                      pl.heads.Classifier(len(images.class_names)),
                      policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=1e-3)
    ft.fit(images, epochs=1, steps_per_epoch=5, verbose=0)  # traced
    start = time.perf_counter()
    ft.fit(images, epochs=1, steps_per_epoch=100, verbose=0)
    steps = 100 / (time.perf_counter() - start)
    out["convnet_train_images_per_second"] = steps * 64
    out["image_pipeline_over_train"] = (
        out["examples_per_second"]["image folder: pl.data.image_folder + augment"]
        / out["convnet_train_images_per_second"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "run"])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--work", default="/tmp/pretrainlib_your_data")
    parser.add_argument("--sample", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(pathlib.Path(args.corpus), args.gigabytes)
        return
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.out:
        results.write(result, args.out)


if __name__ == "__main__":
    main()
