"""Which freezing policy to pick? Every built-in policy on the WordNet task.

Pretrains one encoder exactly as the demo does (co-occurrence embeddings, then
masked LM; or loads one saved with `--encoder`), then fine-tunes it under each
built-in policy on the same 200-label samples (3 seeds), each policy choosing its
learning rate from its own grid on validation macro-F1, with early stopping. Prints
a table (mean ± std of test macro-F1, trainable parameters, fine-tuning seconds)
and writes a JSON file.

    python examples/compare_policies.py --seeds 3 --encoder runs/encoder \
        --out docs/results/policies.json
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import wordnet_demo as demo  # noqa: E402

import pretrainlib as pl  # noqa: E402

HIGH, LOW = [1e-2, 3e-3], [1e-3, 3e-4]
# Policies that train few weights from a frozen start want larger rates.
POLICIES = {
    "FeatureExtraction()": (lambda: pl.freezing.FeatureExtraction(), HIGH),
    "FullFineTune()": (lambda: pl.freezing.FullFineTune(), LOW),
    "FreezeThenUnfreeze(1)": (lambda: pl.freezing.FreezeThenUnfreeze(1), LOW),
    "GradualUnfreeze(1)": (lambda: pl.freezing.GradualUnfreeze(1), LOW),
    "LayerwiseLRDecay(0.5)": (lambda: pl.freezing.LayerwiseLRDecay(0.5), LOW),
    "BitFit()": (lambda: pl.freezing.BitFit(), HIGH),
    "LoRA(rank=8)": (lambda: pl.freezing.LoRA(rank=8), HIGH),
    "Adapters(16)": (lambda: pl.freezing.Adapters(16), HIGH),
}


def main(argv=None):
    parser = demo.argument_parser()
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES),
                        help="compare only these (default: all)")
    args = demo.finish_args(parser.parse_args(argv))
    policies = {name: POLICIES[name] for name in args.policies}
    start = time.time()
    wn = pl.datasets.wordnet_supersenses()
    if args.encoder and pathlib.Path(args.encoder, "encoder.keras").exists():
        tokenizer = pl.text.WordPieceTokenizer.load(
            str(pathlib.Path(args.encoder, "tokenizer.json")))
        encoder = keras.saving.load_model(pathlib.Path(args.encoder, "encoder.keras"))
        demo.log(f"loaded the pretrained encoder from {args.encoder}")
    else:
        tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)
        encoder = demo.pretrain(wn, tokenizer, args, seed=0)
        if args.encoder:  # keep it for the next run (and the benchmarks)
            pathlib.Path(args.encoder).mkdir(parents=True, exist_ok=True)
            encoder.save(pathlib.Path(args.encoder, "encoder.keras"))
            tokenizer.save(str(pathlib.Path(args.encoder, "tokenizer.json")))
    evaluator = pl.Evaluator(metrics=["accuracy", "macro_f1"], class_names=wn.class_names)
    results = {name: [] for name in policies}
    for seed in range(args.seeds):
        def dataset(split, shuffle=True):
            return demo.labeled_dataset(split, tokenizer, args, seed, shuffle)

        train = dataset(wn.train.sample(args.labels, seed=seed))
        val = dataset(wn.validation.sample(args.val_labels, seed=seed), shuffle=False)
        test = dataset(demo.test_split(wn, args), shuffle=False)
        for name, (policy, rates) in policies.items():
            def build(policy=policy):
                return pl.FineTuner(pl.backbones.clone(encoder),
                                    pl.heads.Classifier(len(wn.class_names)),
                                    policy=policy())

            demo.log(f"seed {seed}: {name}")
            t = time.time()
            _, lr, model = demo.fine_tune(build, train, val, args, rates, seed)
            report = evaluator.evaluate(model, test)
            trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
            results[name].append({**report.metrics, "learning_rate": lr,
                                  "seconds": time.time() - t,
                                  "trainable_params_last_stage": trainable})
            demo.log(f"  {name}: macro-F1 {report.metrics['macro_f1']:.3f} (lr {lr:g})")
    rows = ["| policy | test macro-F1 | test accuracy | trainable params (last stage) "
            "| fine-tuning s / seed |", "|---|---|---|---|---|"]
    summary = {}
    for name, runs in results.items():
        f1 = [r["macro_f1"] for r in runs]
        acc = [r["accuracy"] for r in runs]
        summary[name] = {"macro_f1_mean": float(np.mean(f1)), "macro_f1_std": float(np.std(f1)),
                         "accuracy_mean": float(np.mean(acc))}
        rows.append(f"| `{name}` | {np.mean(f1):.3f} ± {np.std(f1):.3f} | "
                    f"{np.mean(acc):.3f} | {runs[0]['trainable_params_last_stage']:,} | "
                    f"{np.mean([r['seconds'] for r in runs]):.0f} |")
    print("\n".join(rows))
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": vars(args), "summary": summary, "runs": results,
                                "table": rows, "wall_seconds": time.time() - start}, indent=2))
    print(f"Wall time {(time.time() - start) / 60:.1f} min. Results written to {path}")


if __name__ == "__main__":
    main()
