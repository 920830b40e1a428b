"""How much is pretraining worth per label? The WordNet task at several label budgets.

Pretrains the demo's encoder once (co-occurrence embeddings + masked LM), then for
each label budget x seed trains three arms on the same stratified sample: the
pretrained encoder fine-tuned under FreezeThenUnfreeze, the same architecture from
scratch (its own learning rate from the same grid, same epochs and early stopping),
and TF-IDF + logistic regression. Writes the markdown table, the plot (test
macro-F1 against labels, mean ± sample std over seeds) and the JSON.

    python examples/label_efficiency.py --budgets 50 200 1000 --seeds 3 \\
        --out docs/results/label_efficiency
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import wordnet_demo as demo  # noqa: E402

import pretrainlib as pl  # noqa: E402


def main(argv=None):
    parser = demo.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 200, 1000])
    parser.set_defaults(out="runs/label_efficiency")
    args = demo.finish_args(parser.parse_args(argv))
    if args.quick:
        args.budgets = [12, 24]
    start = time.time()
    wn = pl.datasets.wordnet_supersenses()
    tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)
    encoder = demo.pretrain(wn, tokenizer, args, seed=0)
    test_part = demo.test_split(wn, args)
    test = demo.labeled_dataset(test_part, tokenizer, args, seed=0, shuffle=False)
    evaluator = pl.Evaluator(["macro_f1", "accuracy"], class_names=wn.class_names)

    def arm(build):
        def train(part, seed):
            val = wn.validation.sample(args.val_labels, seed=seed)
            _, _, model = demo.fine_tune(
                build, demo.labeled_dataset(part, tokenizer, args, seed),
                demo.labeled_dataset(val, tokenizer, args, seed, shuffle=False),
                args, args.learning_rates, seed)
            return model
        return train

    arms = {
        "pretrained": arm(lambda: pl.FineTuner(
            pl.backbones.clone(encoder), pl.heads.Classifier(len(wn.class_names)),
            policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs))),
        "scratch": arm(lambda: pl.FineTuner(
            demo.make_encoder(tokenizer, args), pl.heads.Classifier(len(wn.class_names)),
            policy=pl.freezing.FullFineTune())),
    }
    if importlib.util.find_spec("sklearn") is not None:
        arms["TF-IDF + logistic regression"] = lambda part, seed: demo.tfidf_baseline(
            part, test_part)
    study = evaluator.label_efficiency(arms, wn.train, test, args.budgets, args.seeds)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_efficiency.json").write_text(
        json.dumps({**study.to_dict(), **demo.provenance(start)}, indent=2))
    table = study.to_markdown("macro_f1")
    (out / "label_efficiency.md").write_text(
        f"Test macro-F1, mean ± sample std over {args.seeds} seed(s):\n\n{table}\n")
    study.plot(str(out / "label_efficiency.png"), metric="macro_f1",
               title="WordNet supersenses: test macro-F1 vs labels")
    print(table)
    print(f"\nWall time {(time.time() - start) / 60:.1f} min. Written to {out}/")


if __name__ == "__main__":
    main()
