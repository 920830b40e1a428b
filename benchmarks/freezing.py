"""Freezing-policy benchmarks: feature caching (WordNet, Fashion-MNIST), PEFT memory.

1. Linear probe (`FeatureExtraction`) for `--epochs` epochs, uncached and cached,
   alternated `--repeats` times in one process: wall time of the whole `fit` (the
   cached one includes computing the features once) and the median time of a
   head-training epoch after the first (no tracing in it), and their ratios. On
   the WordNet task (TextEncoder, 200 labels) and on Fashion-MNIST (ConvNet,
   10 labels per class).
2. For each policy: trainable parameters and the bytes of optimizer state (AdamW
   moments and per-variable step counts) after the FineTuner builds its optimizer.

    python benchmarks/freezing.py --out docs/results/benchmark_freezing.json
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py, beside this script)


def encoder_for(tokenizer, args):
    keras.utils.set_random_seed(0)
    return pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=args.layers,
                                    hidden_dim=args.hidden, max_sequence_length=args.length)


def time_probe(backbone, num_classes, train, val, args, cache) -> dict:
    ft = pl.FineTuner(backbone, pl.heads.Classifier(num_classes),
                      policy=pl.freezing.FeatureExtraction())
    ft.compile(learning_rate=1e-2)
    epochs = EpochTimes()
    start = time.perf_counter()
    history = ft.fit(train, validation_data=val, epochs=args.epochs, verbose=0,
                     cache_features=cache, callbacks=[epochs])
    return {"seconds": time.perf_counter() - start,
            "epoch_seconds": float(np.median(epochs.seconds[1:])),
            "val_accuracy": float(history.history["val_accuracy"][-1])}


def feature_cache(build_backbone, num_classes, train, val, args) -> dict:
    runs = {"uncached": [], "cached": []}
    for _ in range(args.repeats):
        for mode, cache in (("uncached", False), ("cached", "auto")):
            runs[mode].append(time_probe(build_backbone(), num_classes, train, val, args,
                                         cache))
            print(mode, runs[mode][-1], flush=True)
    best = {mode: min(r["seconds"] for r in rs) for mode, rs in runs.items()}
    epoch = {mode: min(r["epoch_seconds"] for r in rs) for mode, rs in runs.items()}
    return {"runs": runs, "best_seconds": best, "speedup": best["uncached"] / best["cached"],
            "best_epoch_seconds": epoch,
            "epoch_speedup": epoch["uncached"] / epoch["cached"]}


def fashion_mnist_data():
    fm = pl.datasets.fashion_mnist()
    train = fm.train.sample(10 * len(fm.class_names), seed=0)
    val = fm.validation.sample(1000, seed=0)
    return (pl.data.image_dataset(train.images, train.labels, batch_size=16, seed=0),
            pl.data.image_dataset(val.images, val.labels, batch_size=256, shuffle=False))


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def memory(tokenizer, train, args) -> dict:
    policies = {
        "FullFineTune()": pl.freezing.FullFineTune(),
        "FeatureExtraction()": pl.freezing.FeatureExtraction(),
        "BitFit()": pl.freezing.BitFit(),
        "LoRA(rank=8)": pl.freezing.LoRA(rank=8),
        "Adapters(16)": pl.freezing.Adapters(16),
    }
    rows = {}
    for name, policy in policies.items():
        ft = pl.FineTuner(encoder_for(tokenizer, args), pl.heads.Classifier(6), policy=policy)
        ft.compile(learning_rate=1e-3)
        ft.fit(train.take(1), epochs=1, verbose=0, cache_features=False)
        slot_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                         for v in ft.optimizer.variables)
        rows[name] = {
            "trainable_params": sum(int(np.prod(v.shape)) for v in ft.trainable_variables),
            "total_params": sum(int(np.prod(v.shape)) for v in ft.weights),
            "optimizer_state_bytes": slot_bytes,
        }
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, default=200)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--length", type=int, default=48)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="runs/benchmark_freezing.json")
    args = p.parse_args(argv)
    wn = pl.datasets.wordnet_supersenses()
    tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)

    def dataset(split, shuffle):
        return pl.data.text_dataset(split.texts, tokenizer, labels=split.labels, batch_size=16,
                                    sequence_length=args.length, shuffle=shuffle, seed=0)

    train = dataset(wn.train.sample(args.labels, seed=0), True)
    val = dataset(wn.validation.sample(500, seed=0), False)

    def convnet():
        keras.utils.set_random_seed(0)
        return pl.backbones.ConvNet()

    result = {
        "config": vars(args),
        "feature_cache": feature_cache(lambda: encoder_for(tokenizer, args), 6, train, val,
                                       args),
        "feature_cache_fashion_mnist": feature_cache(convnet, 10, *fashion_mnist_data(),
                                                     args),
        "memory": memory(tokenizer, train, args),
    }
    for task, key in (("WordNet", "feature_cache"),
                      ("Fashion-MNIST", "feature_cache_fashion_mnist")):
        cache = result[key]
        best, epoch = cache["best_seconds"], cache["best_epoch_seconds"]
        print(f"{task} linear probe, {args.epochs} epochs: uncached {best['uncached']:.1f} s, "
              f"cached {best['cached']:.1f} s: {cache['speedup']:.1f}x; one head-training "
              f"epoch: {epoch['uncached']:.2f} s vs {epoch['cached']:.3f} s: "
              f"{cache['epoch_speedup']:.0f}x")
    for name, row in result["memory"].items():
        print(f"{name:<22} trainable {row['trainable_params']:>9,} of {row['total_params']:,}"
              f"  optimizer state {row['optimizer_state_bytes'] / 1024:>8.1f} KiB")
    results.write(result, args.out)


if __name__ == "__main__":
    main()
