"""Input pipelines keyed by (seed, epoch) vs a plain tf.data shuffle pipeline.

    python benchmarks/epoch_orders.py --out docs/results/benchmark_epoch_orders.json

On the bundled data (all WordNet training glosses, 128-token rows, batch 32; the
Fashion-MNIST training images, batch 64), in one process, arms alternated for
`--rounds` rounds, each figure the median over rounds:

- batches per second of a full epoch from `pl.data.text_dataset` / `image_dataset`
  (with and without augmentation) and from the hand-written pipeline it replaced
  (`from_tensor_slices(...).cache().shuffle(n, reshuffle_each_iteration=True)
  .batch(...)`, tokenized the same way);
- seconds from asking for a resumed stream to its first batch, at batch 10 and at
  batch 900 of a run: `source.stream(epoch, batch)` vs `dataset.repeat().skip(n)`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import keras
import tensorflow as tf

import pretrainlib as pl
import results  # benchmarks/results.py, beside this script


def epoch_rate(dataset) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in dataset)
    return n / (time.perf_counter() - start)


def first_batch_seconds(make) -> float:
    start = time.perf_counter()
    next(iter(make()))
    return time.perf_counter() - start


def plain_text(texts, labels, tokenizer, batch_size, length):
    encoded = (tf.data.Dataset.from_tensor_slices(texts).batch(1024)
               .map(lambda t: tokenizer.encode(t, length)).unbatch())
    ds = tf.data.Dataset.zip(encoded, tf.data.Dataset.from_tensor_slices(labels)).cache()
    return ds.shuffle(len(texts), seed=0, reshuffle_each_iteration=True).batch(
        batch_size).prefetch(tf.data.AUTOTUNE)


def plain_images(images, labels, batch_size, augment=None):
    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels)).shuffle(
        len(images), seed=0, reshuffle_each_iteration=True).batch(batch_size)

    def prepare(x, y):
        x = tf.cast(x, "float32") / 255
        return (augment(x, training=True) if augment is not None else x), y
    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    wordnet = pl.datasets.wordnet_supersenses().train
    texts, labels = list(wordnet.texts), list(wordnet.labels)
    tokenizer = pl.text.WordPieceTokenizer.train(texts[:5000], vocab_size=2000)
    fm = pl.datasets.fashion_mnist().train
    augment = keras.layers.RandomTranslation(0.1, 0.1)

    keyed_text = pl.data.text_dataset(texts, tokenizer, labels, batch_size=32,
                                      sequence_length=128, seed=0)
    arms = {
        "text: pl.data.text_dataset": keyed_text,
        "text: hand-written shuffle pipeline": plain_text(texts, labels, tokenizer, 32, 128),
        "images: pl.data.image_dataset": pl.data.image_dataset(
            fm.images, fm.labels, batch_size=64, seed=0),
        "images: hand-written shuffle pipeline": plain_images(fm.images, fm.labels, 64),
        "images + augment: pl.data.image_dataset": pl.data.image_dataset(
            fm.images, fm.labels, batch_size=64, seed=0, augment=augment),
        "images + augment: hand-written shuffle pipeline": plain_images(
            fm.images, fm.labels, 64, augment),
    }
    for dataset in arms.values():  # the first pass fills caches
        epoch_rate(dataset)
    rates = {name: [] for name in arms}
    source = pl.epochs.source_of(keyed_text)
    steps = source.num_batches
    resume = {f"{kind} at batch {b}": [] for kind in ("stream", "repeat().skip") for b in
              (10, 900)}
    for _ in range(args.rounds):
        for name, dataset in arms.items():
            rates[name].append(epoch_rate(dataset))
        for b in (10, 900):
            resume[f"stream at batch {b}"].append(first_batch_seconds(
                lambda: source.stream(b // steps, b % steps)))
            resume[f"repeat().skip at batch {b}"].append(first_batch_seconds(
                lambda: keyed_text.repeat().skip(b)))
    result = {
        "batches_per_second": {k: statistics.median(v) for k, v in rates.items()},
        "seconds_to_first_resumed_batch": {k: statistics.median(v)
                                           for k, v in resume.items()},
        "batches_per_epoch": {"text": steps},
        "rounds": args.rounds,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        results.write(result, args.out)


if __name__ == "__main__":
    main()
