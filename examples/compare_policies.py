"""Which freezing policy to pick? Every built-in policy on the WordNet task.

Pretrains one encoder exactly as the demo does (co-occurrence embeddings, then
masked LM; or loads one saved with `--encoder`), then fine-tunes it under each
built-in policy on the same 200-label samples (3 seeds) with `pl.tune.compare_policies`:
each policy chooses its learning rate from its own grid on validation macro-F1, with
early stopping, and that model is scored once on the test split. Prints
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

# The built-in policies and transforms, each with `pl.tune.default_learning_rates`
# grid: (1e-2, 3e-3) for those that train few weights from a frozen start, else
# (1e-3, 3e-4).
POLICIES = {
    "FeatureExtraction()": lambda: pl.freezing.FeatureExtraction(),
    "FullFineTune()": lambda: pl.freezing.FullFineTune(),
    "FreezeThenUnfreeze(1)": lambda: pl.freezing.FreezeThenUnfreeze(1),
    "GradualUnfreeze(1)": lambda: pl.freezing.GradualUnfreeze(1),
    "LayerwiseLRDecay(0.5)": lambda: pl.freezing.LayerwiseLRDecay(0.5),
    "BitFit()": lambda: pl.freezing.BitFit(),
    "LoRA(rank=8)": lambda: pl.freezing.LoRA(rank=8),
    "Adapters(16)": lambda: pl.freezing.Adapters(16),
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

        demo.log(f"seed {seed}: {len(policies)} policies")
        ft = pl.FineTuner(pl.backbones.clone(encoder), pl.heads.Classifier(len(wn.class_names)))
        ft.compile()
        comparison = pl.tune.compare_policies(
            ft, dataset(wn.train.sample(args.labels, seed=seed)),
            validation_data=dataset(wn.validation.sample(args.val_labels, seed=seed),
                                    shuffle=False),
            test_data=dataset(demo.test_split(wn, args), shuffle=False),
            policies={name: make() for name, make in policies.items()},
            epochs=args.epochs, patience=args.patience, evaluator=evaluator, seed=seed)
        for row in comparison.results:
            results[row.name].append({**row.test, "learning_rate": row.learning_rate,
                                      "seconds": row.seconds,
                                      "trainable_params_last_stage": row.trainable_params})
            demo.log(f"  {row.name}: macro-F1 {row.test['macro_f1']:.3f} "
                     f"(lr {row.learning_rate:g})")
    rows = ["| policy | test macro-F1 | test accuracy | trainable params (last stage) "
            "| fine-tuning s / seed |", "|---|---|---|---|---|"]
    summary = {}
    for name, runs in results.items():
        f1 = [r["macro_f1"] for r in runs]
        acc = [r["accuracy"] for r in runs]
        f1_spread = pl.evaluation.spread(f1)
        summary[name] = {"macro_f1_mean": f1_spread.mean, "macro_f1_std": f1_spread.std,
                         "accuracy_mean": float(np.mean(acc))}
        rows.append(f"| `{name}` | {f1_spread.format(3)} | "
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
