"""Freezing-policy benchmarks on the WordNet task: feature caching and PEFT memory.

1. Linear probe (`FeatureExtraction`) for `--epochs` epochs, uncached and cached,
   alternated `--repeats` times in one process: wall time of the whole `fit` (the
   cached one includes computing the features once) and the median time of a
   head-training epoch after the first (no tracing in it), and their ratios.
2. For each policy: trainable parameters and the bytes of optimizer state (AdamW
   moments and per-variable step counts) after the FineTuner builds its optimizer.

    python benchmarks/freezing.py --out docs/results/benchmark_freezing.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402


def encoder_for(tokenizer, args):
    keras.utils.set_random_seed(0)
    return pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=args.layers,
                                    hidden_dim=args.hidden, max_sequence_length=args.length)


def time_probe(tokenizer, train, val, args, cache) -> dict:
    ft = pl.FineTuner(encoder_for(tokenizer, args), pl.heads.Classifier(6),
                      policy=pl.freezing.FeatureExtraction())
    ft.compile(learning_rate=1e-2)
    epochs = EpochTimes()
    start = time.perf_counter()
    history = ft.fit(train, validation_data=val, epochs=args.epochs, verbose=0,
                     cache_features=cache, callbacks=[epochs])
    return {"seconds": time.perf_counter() - start,
            "epoch_seconds": float(np.median(epochs.seconds[1:])),
            "val_macro_f1": float(history.history["val_macro_f1"][-1])}


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
    runs = {"uncached": [], "cached": []}
    for _ in range(args.repeats):
        for mode, cache in (("uncached", False), ("cached", "auto")):
            runs[mode].append(time_probe(tokenizer, train, val, args, cache))
            print(mode, runs[mode][-1], flush=True)
    best = {mode: min(r["seconds"] for r in rs) for mode, rs in runs.items()}
    epoch = {mode: min(r["epoch_seconds"] for r in rs) for mode, rs in runs.items()}
    result = {
        "config": vars(args),
        "feature_cache": {"runs": runs, "best_seconds": best,
                          "speedup": best["uncached"] / best["cached"],
                          "best_epoch_seconds": epoch,
                          "epoch_speedup": epoch["uncached"] / epoch["cached"]},
        "memory": memory(tokenizer, train, args),
    }
    print(f"linear probe, {args.epochs} epochs: uncached {best['uncached']:.1f} s, cached "
          f"{best['cached']:.1f} s: {result['feature_cache']['speedup']:.1f}x; one "
          f"head-training epoch: {epoch['uncached']:.2f} s vs {epoch['cached']:.3f} s: "
          f"{result['feature_cache']['epoch_speedup']:.0f}x")
    for name, row in result["memory"].items():
        print(f"{name:<22} trainable {row['trainable_params']:>9,} of {row['total_params']:,}"
              f"  optimizer state {row['optimizer_state_bytes'] / 1024:>8.1f} KiB")
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
