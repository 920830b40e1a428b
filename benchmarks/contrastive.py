"""Contrastive pretraining throughput: SimCLR and BYOL on a ResNet-18-size ConvNet.

Images per second (each image is two views through the network) of
`Pretrainer(ConvNet, SimCLR())` and `Pretrainer(ConvNet, BYOL())` on CIFAR-sized
32x32x3 images, the whole input pipeline included (random resized crop, flip,
colour jitter, greyscale, drawn per batch in tf.data), and model FLOP utilization:
the model's analytic training FLOPs (3 x the forward pass's convolutions and dense
layers, both views, plus BYOL's target forward) over the best float32 (or
`--precision`) matmul rate measured on the same machine. The backbone is
`ConvNet(widths=(64, 128, 256, 512), blocks_per_stage=2)`: ResNet-18's stages and
widths (11 M parameters). Arms alternate; the median of each arm's repeats is kept.

    python benchmarks/contrastive.py --out docs/results/benchmark_contrastive.json
    python benchmarks/contrastive.py --precision mixed_float16 --batch 512 --steps 50 \\
        --out docs/results/benchmark_contrastive_gpu.json        # on a GPU (gpu.sh)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py, beside this script)
from throughput import matmul_peak  # noqa: E402


def forward_flops(model: keras.Model, input_shape: tuple) -> float:
    """FLOPs of one forward pass of one example, as TensorFlow's graph profiler counts
    them (2 x multiply-adds of convolutions and matmuls)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    function = tf.function(lambda x: model(x, training=False))
    graph = function.get_concrete_function(tf.TensorSpec((1, *input_shape))).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(model_analyzer.profile(graph, options=options).total_float_ops)


def build(objective: str, args):
    keras.utils.set_random_seed(0)
    backbone = pl.backbones.ConvNet(input_shape=(32, 32, 3), widths=(64, 128, 256, 512),
                                    blocks_per_stage=2)
    made = {"simclr": pl.objectives.SimCLR(), "byol": pl.objectives.BYOL()}[objective]
    pre = pl.Pretrainer(backbone, made, seed=0)
    pre.compile(learning_rate=1e-3, precision=args.precision, jit_compile=args.jit)
    # Training FLOPs per step: forward + backward (~2 x forward) of the whole model on
    # both views; BYOL's target network runs forward only (no gradient reaches it).
    total = forward_flops(pre, (2, 32, 32, 3))
    target = forward_flops(made.target, (32, 32, 3)) * 2 if objective == "byol" else 0.0
    return pre, args.batch * (3 * (total - target) + target)


def images_per_second(pre, data, steps: int, warmup: int, batch: int) -> float:
    pre.fit(data, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    pre.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", nargs="+", default=["simclr", "byol"],
                   choices=["simclr", "byol"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default=None, help="e.g. mixed_float16 on a GPU")
    p.add_argument("--jit", type=int, default=1, help="XLA (jit_compile)")
    p.add_argument("--out", default="runs/benchmark_contrastive.json")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch * 8, 32, 32, 3), dtype=np.uint8)
    data = pl.data.image_dataset(images, batch_size=args.batch, seed=0).repeat()
    models = {name: build(name, args) for name in args.objectives}
    runs = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, (pre, _) in models.items():
            runs[name].append(images_per_second(pre, data, args.steps, args.warmup,
                                                args.batch))
            print(name, f"{runs[name][-1]:.1f} images/s", flush=True)
    peak_dtype = "float16" if args.precision == "mixed_float16" else (
        "bfloat16" if args.precision == "mixed_bfloat16" else "float32")
    peak = matmul_peak(peak_dtype)
    rows = {}
    for name, (pre, flops) in models.items():
        rate = statistics.median(runs[name])
        rows[name] = {"images_per_second": rate, "runs": runs[name],
                      "training_flops_per_step": flops,
                      "mfu": flops * rate / args.batch / peak}
    result = {"config": vars(args), "rows": rows, "matmul_peak_flops": peak,
              "peak_dtype": peak_dtype,
              "parameters": int(models[args.objectives[0]][0].backbone.count_params()),
              "device": (tf.config.list_physical_devices("GPU") or ["CPU"])[0].__repr__(),
              "machine": platform.platform(),
              "date": time.strftime("%Y-%m-%d")}
    for name, row in rows.items():
        print(f"{name}: {row['images_per_second']:.1f} images/s, MFU {row['mfu']:.3f}")
    results.write(result, args.out)


if __name__ == "__main__":
    main()
