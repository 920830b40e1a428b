"""Training throughput: pretrainlib vs KerasHub, library overhead, MFU, input pipeline.

One process, runs alternated, best of `--repeats` per arm, ratios reported:

1. `mlm`: masked-LM pretraining of the same network config (BERT-style post-norm
   encoder, vocab 8k, 4 layers, hidden 256, 4 heads, sequence 128, batch 32) by a
   pretrainlib `Pretrainer(TextEncoder, MaskedLM)` and by KerasHub's
   `BertMaskedLM(BertBackbone)`, on the identical masked batches of WordNet glosses
   (pre-computed, so only the training step is timed). Then real (non-padding)
   tokens per second: pretrainlib on packed rows vs KerasHub on one gloss a row.
2. `overhead`: `FineTuner.fit` vs a hand-written `keras.Model.fit` of the same
   backbone + head, same optimizer settings, same data, whole `fit` calls.
3. `mfu`: the pretrainlib arm's model FLOP/s (analytic count, below) over the
   best float32 matmul FLOP/s measured on this machine.
4. `pipeline`: the Pretrainer's whole input pipeline (tokenized, packed, shuffled,
   masked per batch) read alone, in batches per second, vs training steps per
   second.
5. `precision`: float32 vs `compile(precision=...)` (`--precision`, default
   `"mixed_bfloat16"`) vs float32 with XLA (`jit_compile=True`), steps/s.

    python benchmarks/throughput.py --out docs/results/benchmark_throughput.json
    python benchmarks/throughput.py --precision mixed_float16  # on a GPU (gpu.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py, beside this script)

SECTIONS = ("mlm", "overhead", "mfu", "pipeline", "precision")


# === Timing helpers ===
def steps_per_second(model, data, steps: int, warmup: int, fit=keras.Model.fit) -> float:
    """Trains `model` on `warmup` then `steps` batches of `data` (pre-computed batches
    stacked by `stacked`, cycled, or a dataset); returns timed steps per second.
    Tracing and compilation fall in the warm-up.

    `fit` is `keras.Model.fit` by default, so a Pretrainer trains on the given,
    already masked batches as they are, the same step KerasHub's model runs.
    """
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(data).repeat()
    fit(model, data, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    fit(model, data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def stacked(batches: list) -> tuple:
    """A list of (x, y, w) batches as one (x, y, w) of [n, batch, ...] arrays, so that
    `from_tensor_slices` replays them in order."""
    return tf.nest.map_structure(lambda *parts: np.stack(parts), *batches)


# === Models ===
def pl_mlm(tokenizer, args, precision=None, jit_compile="auto"):
    keras.utils.set_random_seed(0)
    encoder = pl.backbones.TextEncoder(
        tokenizer.vocab_size, num_layers=args.layers, hidden_dim=args.hidden,
        num_heads=args.heads, max_sequence_length=args.length, normalize_first=False,
        dropout=0.1)  # BERT's post-norm blocks and dropout, as BertBackbone
    pre = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile(learning_rate=1e-4, precision=precision, jit_compile=jit_compile)
    return pre


def hub_mlm(tokenizer, args, precision=None, jit_compile="auto"):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocab_size, num_layers=args.layers, num_heads=args.heads,
        hidden_dim=args.hidden, intermediate_dim=4 * args.hidden,
        max_sequence_length=args.length, dropout=0.1, dtype=precision)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    # KerasHub's own default compile (AdamW, sparse cross-entropy from logits, weighted
    # accuracy), with pretrainlib's clipnorm so that both steps do the same work.
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()],
                  jit_compile=jit_compile)
    return model


def hub_batches(batches: list) -> list:
    """pretrainlib's masked batches with the `segment_ids` BERT also reads."""
    return [({**x, "segment_ids": np.zeros_like(x["token_ids"])}, y, w) for x, y, w in batches]


def masked_batches(pre, data, n: int) -> list:
    view = pre._stream_view(data.repeat(), 0)
    return [tf.nest.map_structure(np.asarray, b) for b in view.take(n)]


def training_flops(args, real_positions: float) -> float:
    """Model FLOPs of one training step (3 x forward, the usual count): the encoder's
    matmuls (4 attention projections and the 2 feed-forward ones per layer), the
    attention scores and mixing, and the MLM head on its `real_positions` predicted
    tokens (dense + tied output projection)."""
    h, n, b, layers = args.hidden, args.length, args.batch, args.layers
    per_token = layers * (2 * 4 * h * h + 2 * 2 * h * 4 * h)
    attention = layers * 2 * 2 * n * n * h  # QK^T and AV per sequence
    head = real_positions * (2 * h * h + 2 * h * args.vocab)
    return 3 * (b * n * per_token + b * attention + head)


def matmul_peak(dtype="float32", size=2048, repeats=20) -> float:
    a = tf.random.normal([size, size], dtype=dtype)
    step = tf.function(lambda m: tf.matmul(m, m))
    step(a).numpy()
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            out = step(a)
        out.numpy()
        best = max(best, 2 * size ** 3 * repeats / (time.perf_counter() - start))
    return best


# === Sections ===
def run_mlm(texts, tokenizer, args, result):
    padded = pl.data.text_dataset(texts, tokenizer, batch_size=args.batch,
                                  sequence_length=args.length, seed=0)
    packed = pl.data.text_dataset(texts, tokenizer, batch_size=args.batch,
                                  sequence_length=args.length, seed=0, pack=True)
    pre = pl_mlm(tokenizer, args, args.precision)
    hub = hub_mlm(tokenizer, args, args.precision)
    same = masked_batches(pre, padded, args.batches)
    arms = {"pretrainlib": (pre, stacked(same)),
            "keras_hub": (hub, stacked(hub_batches(same))),
            "pretrainlib packed": (pre, stacked(masked_batches(pre, packed, args.batches)))}
    real = {name: float(np.mean(data[0]["padding_mask"].sum(-1)))
            for name, (_, data) in arms.items()}
    runs = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, (model, data) in arms.items():
            runs[name].append(steps_per_second(model, data, args.steps, args.warmup))
            print("mlm", name, f"{runs[name][-1]:.3f} steps/s", flush=True)
    rows = {name: {"steps_per_second": max(runs[name]), "runs": runs[name],
                   "real_tokens_per_row": real[name],
                   "real_tokens_per_second": max(runs[name]) * args.batch * real[name]}
            for name in arms}
    result["mlm"] = {
        "rows": rows,
        "ratio_equal_inputs": rows["pretrainlib"]["steps_per_second"]
        / rows["keras_hub"]["steps_per_second"],
        "ratio_real_tokens_packed_vs_keras_hub": rows["pretrainlib packed"][
            "real_tokens_per_second"] / rows["keras_hub"]["real_tokens_per_second"],
        "masked_positions_per_row": float(np.mean(same[0][2].sum(-1))),
    }


def run_overhead(wordnet, tokenizer, args, result):
    part = wordnet.train.sample(args.labels, seed=0)
    data = pl.data.text_dataset(part.texts, tokenizer, labels=part.labels,
                                batch_size=args.batch, sequence_length=48, seed=0)

    def backbone():
        keras.utils.set_random_seed(0)
        return pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=2, hidden_dim=128,
                                        max_sequence_length=48)

    ft = pl.FineTuner(backbone(), pl.heads.Classifier(6), policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=1e-3, metrics=[keras.metrics.SparseCategoricalAccuracy()])
    encoder = backbone()
    inputs = {name: keras.Input((48,), dtype="int32", name=name)
              for name in ("token_ids", "padding_mask")}
    plain = keras.Model(inputs, pl.heads.Classifier(6)(encoder(inputs)))
    plain.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    arms = {"FineTuner.fit": ft, "keras.Model.fit": plain}
    for model in arms.values():
        model.fit(data, epochs=1, verbose=0)  # tracing
    runs = {name: [] for name in arms}
    for _ in range(args.repeats + 1):
        for name, model in arms.items():
            start = time.perf_counter()
            model.fit(data, epochs=args.epochs, verbose=0)
            runs[name].append(time.perf_counter() - start)
            print("overhead", name, f"{runs[name][-1]:.2f} s", flush=True)
    best = {name: min(times) for name, times in runs.items()}
    # Each repeat runs both arms back to back: the median of those paired ratios is
    # robust to the machine's step rate jumping between levels mid-run.
    paired = [ours / theirs for ours, theirs in zip(runs["FineTuner.fit"][1:],
                                                    runs["keras.Model.fit"][1:])]
    result["overhead"] = {"seconds": best, "runs": runs, "labels": args.labels,
                          "epochs": args.epochs,
                          "slowdown": best["FineTuner.fit"] / best["keras.Model.fit"] - 1,
                          "paired_ratios": paired,
                          "median_paired_slowdown": float(np.median(paired)) - 1}


def run_mfu(args, result):
    rows = result["mlm"]["rows"]["pretrainlib"]
    positions = result["mlm"]["masked_positions_per_row"] * args.batch
    flops = training_flops(args, positions)
    # The peak of the dtype the matmuls run in (float16 under mixed_float16, ...).
    compute = keras.dtype_policies.get(args.precision or "float32").compute_dtype
    peak = matmul_peak(compute)
    achieved = flops * rows["steps_per_second"]
    result["mfu"] = {"flops_per_step": flops, "matmul_dtype": compute,
                     "achieved_flops_per_second": achieved,
                     "matmul_peak_flops_per_second": peak, "mfu": achieved / peak}


def run_pipeline(texts, tokenizer, args, result):
    packed = pl.data.text_dataset(texts, tokenizer, batch_size=args.batch,
                                  sequence_length=args.length, seed=0, pack=True)
    pre = pl_mlm(tokenizer, args, args.precision)
    view = iter(pre._stream_view(packed.repeat(), 0))
    for _ in range(5):
        next(view)
    start = time.perf_counter()
    n = 200
    for _ in range(n):
        next(view)
    delivered = n / (time.perf_counter() - start)
    # The real `Pretrainer.fit` on the raw packed rows: masking runs in its pipeline.
    consumed = steps_per_second(pre, packed.repeat(), args.steps, args.warmup,
                                fit=pl.Pretrainer.fit)
    result["pipeline"] = {"batches_per_second": delivered,
                          "train_steps_per_second": consumed,
                          "ratio": delivered / consumed}


def run_precision(texts, tokenizer, args, result):
    padded = pl.data.text_dataset(texts, tokenizer, batch_size=args.batch,
                                  sequence_length=args.length, seed=0)
    mixed = args.precision or "mixed_bfloat16"
    arms = {"float32": dict(), mixed: dict(precision=mixed),
            "float32 + XLA": dict(jit_compile=True)}
    models = {name: pl_mlm(tokenizer, args, **options) for name, options in arms.items()}
    data = stacked(masked_batches(models["float32"], padded, args.batches))
    runs = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, model in models.items():
            runs[name].append(steps_per_second(model, data, args.steps, args.warmup))
            print("precision", name, f"{runs[name][-1]:.3f} steps/s", flush=True)
    base = max(runs["float32"])
    result["precision"] = {name: {"steps_per_second": max(r), "runs": r,
                                  "vs_float32": max(r) / base} for name, r in runs.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batches", type=int, default=20, help="distinct masked batches")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--labels", type=int, default=512, help="overhead: labeled glosses")
    p.add_argument("--epochs", type=int, default=3, help="overhead: epochs per fit")
    p.add_argument("--precision", default=None,
                   help="mlm/mfu/pipeline arms' precision (e.g. mixed_float16 on GPU)")
    p.add_argument("--out", default="runs/benchmark_throughput.json")
    args = p.parse_args(argv)
    wordnet = pl.datasets.wordnet_supersenses()
    texts = wordnet.unlabeled
    tokenizer = pl.text.WordPieceTokenizer.train(texts, vocab_size=args.vocab)
    result = {"config": vars(args), "machine": {
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_logical_devices("GPU")],
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "keras_hub": keras_hub.__version__}}
    if "mlm" in args.only or "mfu" in args.only:
        run_mlm(texts, tokenizer, args, result)
    if "mfu" in args.only:
        run_mfu(args, result)
    if "overhead" in args.only:
        run_overhead(wordnet, tokenizer, args, result)
    if "pipeline" in args.only:
        run_pipeline(texts, tokenizer, args, result)
    if "precision" in args.only:
        run_precision(texts, tokenizer, args, result)
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    results.write(result, args.out)


if __name__ == "__main__":
    main()
