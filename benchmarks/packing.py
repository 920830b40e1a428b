"""Masked-LM pretraining throughput on the WordNet glosses: padded vs packed rows.

Trains the demo's TextEncoder (2 x 128, 8k vocabulary) with `MaskedLM` on rows of
`--length` tokens built three ways from the same unlabeled glosses: one gloss per
row padded to the length (`pack=False`), glosses packed into full rows
(`pack=True`), and packed with attention kept inside each gloss
(`reset_attention=True`). Each mode runs `--steps` timed steps after untimed warm-up
(tracing, XLA compilation), alternated `--repeats` times in one process. Reports
steps per second and real (non-padding) tokens per second, their ratios, and the
time one pass over all the glosses' tokens would take.

    python benchmarks/packing.py --out docs/results/benchmark_packing.json
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

MODES = {
    "padded": dict(pack=False),
    "packed": dict(pack=True),
    "packed, attention reset": dict(pack=True, reset_attention=True),
}


def real_tokens_per_row(dataset) -> float:
    real = rows = 0
    for batch in dataset:
        mask = batch["padding_mask"].numpy()
        real += int((mask > 0).sum())
        rows += mask.shape[0]
    return real / rows


def time_mode(texts, tokenizer, options, args) -> dict:
    data = pl.data.text_dataset(texts, tokenizer, batch_size=args.batch,
                                sequence_length=args.length, seed=0, **options)
    keras.utils.set_random_seed(0)
    encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=2, hidden_dim=128,
                                       max_sequence_length=args.length)
    pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=1e-3, jit_compile=True)
    stream = data.repeat()
    pre.fit(stream, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    pre.fit(stream, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps_per_second": args.steps / seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="runs/benchmark_packing.json")
    args = p.parse_args(argv)
    texts = pl.datasets.wordnet_supersenses().unlabeled
    tokenizer = pl.text.WordPieceTokenizer.train(texts, vocab_size=args.vocab)
    lengths = tokenizer.token_ids(texts).row_lengths().numpy() + 2  # [CLS], [SEP]
    total_tokens = int(lengths.sum())
    per_row = {
        name: real_tokens_per_row(pl.data.text_dataset(
            texts, tokenizer, batch_size=1024, sequence_length=args.length, shuffle=False,
            **options))
        for name, options in MODES.items()
    }
    runs = {name: [] for name in MODES}
    for _ in range(args.repeats):
        for name, options in MODES.items():
            runs[name].append(time_mode(texts, tokenizer, options, args))
            print(name, runs[name][-1], flush=True)
    rows = {}
    for name in MODES:
        steps = max(r["steps_per_second"] for r in runs[name])
        tokens = steps * args.batch * per_row[name]
        rows[name] = {"steps_per_second": steps, "real_tokens_per_row": per_row[name],
                      "real_tokens_per_second": tokens,
                      "minutes_per_pass": total_tokens / tokens / 60}
    base = rows["padded"]["real_tokens_per_second"]
    for row in rows.values():
        row["real_tokens_speedup"] = row["real_tokens_per_second"] / base
    truncated = float(np.mean(lengths > args.length))
    result = {"config": vars(args), "glosses": len(texts), "tokens": total_tokens,
              "glosses_truncated_when_padded": truncated, "modes": rows, "runs": runs}
    print(f"{len(texts)} glosses, {total_tokens:,} tokens with [CLS]/[SEP]; "
          f"{truncated:.1%} longer than {args.length} (truncated when padded)")
    print(f"{'mode':<26} {'steps/s':>8} {'real tokens/row':>16} {'real tokens/s':>14} "
          f"{'vs padded':>10} {'min/pass':>9}")
    for name, row in rows.items():
        print(f"{name:<26} {row['steps_per_second']:>8.2f} {row['real_tokens_per_row']:>16.1f} "
              f"{row['real_tokens_per_second']:>14,.0f} {row['real_tokens_speedup']:>9.2f}x "
              f"{row['minutes_per_pass']:>9.1f}")
    results.write(result, args.out)


if __name__ == "__main__":
    main()
