"""LoRA fine-tuning on a float32 base vs on the same base quantized to int8.

    python benchmarks/lora_int8.py --out docs/results/benchmark_lora_int8.json

The base: a `TextEncoder` (4 layers, width 512, 8,000 tokens: 17 M parameters) with
co-occurrence token embeddings from the unlabeled WordNet glosses, saved once as a
float32 `.keras` file and once quantized to int8 (`pl.compress.quantize`). Each arm
runs in a fresh process that loads its base with `pl.hub.load_backbone` (an int8
file builds int8 weights directly, never the float ones), puts `LoRA(8)` on the
attention queries and values and a classifier on top, and fine-tunes on 200
labeled glosses for `--epochs` epochs. Per arm: the bytes the model's weights
take, the bytes that train, the resident memory loading the base adds, the
process's peak resident memory above what it had after importing TensorFlow (the
corpus, the tokenizer and the traced steps included), fine-tuning steps per second
and test macro-F1 on 1,000 test glosses.
Arms alternate for `--rounds` rounds; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ARMS = ("float32", "int8")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rss_mib() -> float:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def build_bases(folder: str, seed: int) -> None:
    import keras

    import pretrainlib as pl

    wordnet = pl.datasets.wordnet_supersenses()
    tokenizer = pl.text.WordPieceTokenizer.train(wordnet.unlabeled, vocab_size=8000)
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    keras.utils.set_random_seed(seed)
    backbone = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=4, hidden_dim=512,
                                        num_heads=8, max_sequence_length=128)
    pl.text.init_token_embeddings(backbone, wordnet.unlabeled, tokenizer)
    backbone.save(os.path.join(folder, "float32.keras"))
    print(pl.compress.quantize(backbone, "int8"))
    backbone.save(os.path.join(folder, "int8.keras"))


def run_arm(folder: str, arm: str, epochs: int, seed: int) -> dict:
    import keras
    import numpy as np

    import pretrainlib as pl

    baseline = peak_rss_mib()  # TensorFlow, Keras and the library imported
    wordnet = pl.datasets.wordnet_supersenses()
    tokenizer = pl.text.WordPieceTokenizer.load(os.path.join(folder, "tokenizer.json"))
    before = rss_mib()
    backbone = pl.hub.load_backbone(os.path.join(folder, f"{arm}.keras"))
    loaded = rss_mib() - before
    keras.utils.set_random_seed(seed)
    ft = pl.FineTuner(backbone, pl.heads.Classifier(len(wordnet.class_names)),
                      adapters=pl.freezing.LoRA(8),
                      preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=128))
    ft.compile(learning_rate=3e-3)
    train = wordnet.train.sample(200, seed=seed)
    start = time.perf_counter()
    history = ft.fit(train.texts, train.labels, batch_size=16, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    steps = epochs * -(-len(train.texts) // 16)
    test = wordnet.test.sample(1000, seed=0)
    report = pl.Evaluator(metrics=["macro_f1"]).evaluate(
        ft, pl.data.text_dataset(test.texts, tokenizer, labels=test.labels, shuffle=False,
                                 sequence_length=128))
    return {
        "weights_mib": sum(np.dtype(v.dtype).itemsize * int(np.prod(v.shape))
                           for v in ft.weights) / 2 ** 20,
        "trainable_mib": sum(np.dtype(v.dtype).itemsize * int(np.prod(v.shape))
                             for v in ft.trainable_weights) / 2 ** 20,
        "rss_to_load_the_base_mib": loaded,
        "peak_rss_above_imports_mib": peak_rss_mib() - baseline,
        "steps_per_second": steps / seconds,
        "loss_first_last": [history.history["loss"][0], history.history["loss"][-1]],
        "macro_f1": report.metrics["macro_f1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmark_lora_int8.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:  # one arm, in its own process
        print(json.dumps(run_arm(args.folder, args.arm, args.epochs, args.seed)))
        return
    folder = tempfile.mkdtemp(prefix="lora_int8_")
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                    f"import lora_int8; lora_int8.build_bases({folder!r}, {args.seed})"],
                   check=True)
    rounds = {arm: [] for arm in ARMS}
    for round_ in range(args.rounds):
        for arm in (ARMS if round_ % 2 == 0 else ARMS[::-1]):
            done = subprocess.run([sys.executable, __file__, "--arm", arm, "--folder", folder,
                                   "--epochs", str(args.epochs), "--seed", str(args.seed)],
                                  check=True, capture_output=True, text=True)
            rounds[arm].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(arm, rounds[arm][-1], flush=True)
    medians = {arm: {key: statistics.median(r[key] for r in runs)
                     for key in runs[0] if key != "loss_first_last"}
               for arm, runs in rounds.items()}
    sizes = {arm: os.path.getsize(os.path.join(folder, f"{arm}.keras")) / 2 ** 20
             for arm in ARMS}
    import results  # benchmarks/results.py, beside this script

    results.write({"command": " ".join(["python", "benchmarks/lora_int8.py", *sys.argv[1:]]),
                   "date": time.strftime("%Y-%m-%d"), "base_file_mib": sizes,
                   "medians": medians, "rounds": rounds}, args.out)
    for arm in ARMS:
        print(arm, {k: round(v, 3) for k, v in medians[arm].items()})


if __name__ == "__main__":
    main()
