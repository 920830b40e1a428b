"""Pretrain -> fine-tune -> evaluate on real WordNet glosses; did pretraining pay off?

1. Trains a WordPiece tokenizer on ~109,000 unlabeled WordNet glosses and pretrains a
   small BERT-style TextEncoder on them in two steps: token embeddings from
   co-occurrence statistics (PPMI + SVD, ~30 s), then masked language modeling on
   packed 64-token rows.
2. Fine-tunes it on a few labeled noun definitions (default 200) to predict one of six
   supersenses, under the library's default FreezeThenUnfreeze policy.
3. Trains the same architecture from scratch on the same labels: a fair baseline
   with its own tuned learning rate, the same epoch budget and the same early
   stopping on validation macro-F1.
4. Optionally (if scikit-learn is installed) fits TF-IDF + logistic regression.
5. Prints a table and writes a JSON file with accuracy, macro-F1 and wall time.

    python examples/wordnet_demo.py                          # the README's demo
    python examples/wordnet_demo.py --seeds 3 --ablations    # the docs/results.md table
    python examples/wordnet_demo.py --corpus fortunes --seeds 3   # a second corpus

`--corpus fortunes` runs the same recipe, unchanged, on the bundled fortune-cookie
topics (`pl.datasets.fortune_topics()`: seven topics, ~14,000 unlabeled fortunes).

`--ablations` adds two arms that show what each pretraining step contributes: the
co-occurrence embeddings without masked LM, and masked LM without them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import pretrainlib as pl  # noqa: E402

CORPORA = {"wordnet": ("WordNet supersenses", pl.datasets.wordnet_supersenses),
           "fortunes": ("Fortune-cookie topics", pl.datasets.fortune_topics)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def make_encoder(tokenizer, args) -> pl.backbones.TextEncoder:
    return pl.backbones.TextEncoder(
        tokenizer.vocab_size, num_layers=args.layers, hidden_dim=args.hidden,
        num_heads=2, max_sequence_length=args.pretrain_length,
    )


def labeled_dataset(split, tokenizer, args, seed: int, shuffle: bool = True):
    return pl.data.text_dataset(split.texts, tokenizer, labels=split.labels,
                                batch_size=args.batch, sequence_length=args.length,
                                shuffle=shuffle, seed=seed)


def pretrain(wn, tokenizer, args, seed: int, cooccurrence: bool = True,
             masked_lm: bool = True, keep_head: bool = False):
    """A pretrained TextEncoder: co-occurrence token embeddings, then masked LM
    (`keep_head`: returns `(encoder, pretrainer)`, the masked-LM head kept in the
    pretrainer, for prompts)."""
    keras.utils.set_random_seed(seed)
    encoder = make_encoder(tokenizer, args)
    if cooccurrence:
        log(f"token embeddings from co-occurrence counts (PPMI + SVD) in "
            f"{len(wn.unlabeled)} unlabeled texts")
        pl.text.init_token_embeddings(encoder, wn.unlabeled, tokenizer, seed=seed)
    if not masked_lm:
        return encoder
    unlabeled = pl.data.text_dataset(wn.unlabeled, tokenizer, batch_size=args.pretrain_batch,
                                     sequence_length=args.pretrain_length, pack=True, seed=seed)
    steps = max(1, int(int(unlabeled.cardinality()) * args.pretrain_epochs))
    log(f"pretraining: masked LM, {steps} steps of {args.pretrain_batch} packed rows x "
        f"{args.pretrain_length} tokens ({args.pretrain_epochs:g} passes over the texts)")
    pretrainer = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer))
    # XLA: 12% faster masked-LM steps on a 2-core CPU (Keras's "auto" left it off).
    pretrainer.compile(learning_rate=args.pretrain_lr, jit_compile=True)
    history = pretrainer.fit(unlabeled.repeat(), steps_per_epoch=steps, epochs=1,
                             verbose=1 if sys.stdout.isatty() else 2)
    log(f"masked-LM loss {history.history['loss'][-1]:.3f}, "
        f"accuracy {history.history['accuracy'][-1]:.3f}")
    return (encoder, pretrainer) if keep_head else encoder


def fine_tune(build, train, val, args, learning_rates, seed: int,
              monitor: str = "val_macro_f1", **fit):
    """Trains one model per learning rate; keeps the best on the validation `monitor`
    (`fit`: more arguments of `fit`, e.g. `unlabeled=`)."""
    best = None
    for lr in learning_rates:
        keras.utils.set_random_seed(seed)
        model = build()
        model.compile(learning_rate=lr)
        stop = keras.callbacks.EarlyStopping(monitor, mode="max", patience=args.patience,
                                             restore_best_weights=True)
        history = model.fit(train, validation_data=val, epochs=args.epochs, callbacks=[stop],
                            verbose=0, **fit)
        score = max(history.history[monitor])
        log(f"  lr={lr:g}: best {monitor} {score:.3f} "
            f"after {int(np.argmax(history.history[monitor])) + 1} epochs")
        if best is None or score > best[0]:
            best = (score, lr, model)
    return best


def test_split(wn, args):
    """The test glosses scored: all 4,396, or a stratified sample with `--test-labels`
    (the quick runs' end-to-end tests, where scoring would dominate the time)."""
    return wn.test if args.test_labels is None else wn.test.sample(args.test_labels, seed=0)


def tfidf_baseline(train, test) -> dict | None:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
    except ImportError:
        log("scikit-learn not installed: skipping the TF-IDF baseline")
        return None
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    classifier = LogisticRegression(C=10.0, max_iter=2000)
    classifier.fit(vectorizer.fit_transform(train.texts), train.labels)
    predicted = classifier.predict(vectorizer.transform(test.texts))
    return {"accuracy": float(accuracy_score(test.labels, predicted)),
            "macro_f1": float(f1_score(test.labels, predicted, average="macro"))}


def run(args) -> dict:
    start = time.time()
    title, load = CORPORA[args.corpus]
    wn = load()
    log(f"{title}: {len(wn.unlabeled)} unlabeled texts; labeled train/val/test "
        f"{len(wn.train)}/{len(wn.validation)}/{len(wn.test)}; classes {wn.class_names}")
    evaluator = pl.Evaluator(metrics=["accuracy", "macro_f1"], class_names=wn.class_names)
    arms = {"pretrained": dict(cooccurrence=True, masked_lm=True)}
    if args.ablations:
        arms["co-occurrence embeddings only"] = dict(cooccurrence=True, masked_lm=False)
        arms["masked LM only"] = dict(cooccurrence=False, masked_lm=True)
    results = {name: [] for name in [*arms, "scratch", "tfidf_logreg"]}
    log(f"training a {args.vocab}-token WordPiece vocabulary on {len(wn.unlabeled)} texts")
    tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)
    encoders, pretrain_seconds = {}, {}
    for seed in range(args.seeds):
        if not encoders or args.pretrain_per_seed:
            for name, steps in arms.items():
                t = time.time()
                encoders[name] = pretrain(wn, tokenizer, args, seed, **steps)
                pretrain_seconds[name] = time.time() - t

        def dataset(split, shuffle=True):
            return labeled_dataset(split, tokenizer, args, seed, shuffle)

        train = wn.train.sample(args.labels, seed=seed)
        val = wn.validation.sample(args.val_labels, seed=seed)
        test = dataset(test_split(wn, args), shuffle=False)
        log(f"seed {seed}: {len(train)} labeled training texts, {len(val)} for validation")

        def pretrained_model(encoder):
            # A copy per run: a FineTuner trains the backbone it is given in place.
            return pl.FineTuner(pl.backbones.clone(encoder),
                                pl.heads.Classifier(len(wn.class_names)),
                                policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs))

        def scratch_model():
            return pl.FineTuner(make_encoder(tokenizer, args),
                                pl.heads.Classifier(len(wn.class_names)),
                                policy=pl.freezing.FullFineTune())

        builds = {name: (lambda e=encoder: pretrained_model(e))
                  for name, encoder in encoders.items()}
        builds["scratch"] = scratch_model
        for name, build in builds.items():
            log(f"fine-tuning the {name} model")
            t = time.time()
            _, lr, model = fine_tune(build, dataset(train), dataset(val, shuffle=False), args,
                                     args.learning_rates, seed)
            report = evaluator.evaluate(model, test)
            log(f"  {name}: test accuracy {report.metrics['accuracy']:.4f}, "
                f"macro-F1 {report.metrics['macro_f1']:.4f} (lr {lr:g})")
            results[name].append({**report.metrics, "seconds": time.time() - t,
                                  "learning_rate": lr})
            if seed == 0 and name == "pretrained":
                plot_report(report, model.history, args.out)
            if name in pretrain_seconds:
                results[name][-1]["pretrain_seconds"] = pretrain_seconds[name]
        baseline = tfidf_baseline(train, test_split(wn, args))
        if baseline:
            results["tfidf_logreg"].append(baseline)
            log(f"  TF-IDF + logistic regression: macro-F1 {baseline['macro_f1']:.4f}")

    return write_results(args, results, start, table)


def plot_report(report, history, out: str) -> None:
    """Writes the report's figure (confusion matrix, per-class bars, learning curves)
    next to the JSON results, when matplotlib is installed."""
    path = pathlib.Path(out).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        report.plot(str(path), history=history)
    except ImportError as error:
        log(f"  no report figure: {error}")
    else:
        log(f"  report figure (confusion matrix, per class, learning curves): {path}")


def write_results(args, results: dict, start: float, table, summarize=None, footer: str = "",
                  **extra) -> dict:
    """Summarizes `results` (by `summarize`, default this demo's), writes them with the
    config to `args.out` as JSON, and prints `table(summary, args)`, `footer` and the
    wall time."""
    summary = (summarize or globals()["summarize"])(results)
    payload = {"config": vars(args), "summary": summary, "runs": results, **extra,
               **provenance(start)}
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print()
    print(table(summary, args))
    if footer:
        print(footer)
    print(f"\nWall time {payload['wall_seconds'] / 60:.1f} min. Results written to {path}")
    return payload


def provenance(start: float) -> dict:
    """When, how and where a result was measured: written into every study's JSON."""
    return {"date": time.strftime("%Y-%m-%d"),
            "command": " ".join(["python", *sys.argv]),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
            "wall_seconds": time.time() - start}


def summarize(results: dict) -> dict:
    """`{arm: {metric: {"mean", "std", "n"}}}` over seeds, as pl.evaluation.StudyReport
    computes it for a study with one label budget."""
    runs = [{"arm": arm, "budget": 0, "seed": seed, **run}
            for arm, arm_runs in results.items() for seed, run in enumerate(arm_runs)]
    summary = pl.evaluation.StudyReport(runs, ["accuracy", "macro_f1"]).summary()
    return {arm: {metric: {**cell, "values": [run[metric] for run in results[arm]]}
                  for metric, cell in budgets[0].items()}
            for arm, budgets in summary.items()}


def table(summary: dict, args) -> str:
    rows = [f"{CORPORA[args.corpus][0]}, {args.labels} labels, {args.seeds} seed(s): test set",
            f"{'model':<52} {'accuracy':>16} {'macro-F1':>16}"]
    for name, m in summary.items():
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in ("accuracy", "macro_f1")]
        rows.append(f"{name:<52} {cells[0]:>16} {cells[1]:>16}")
    if "pretrained" in summary and "scratch" in summary:
        gain = pl.evaluation.paired_difference(
            summary["pretrained"]["macro_f1"]["values"], summary["scratch"]["macro_f1"]["values"])
        rows.append(f"pretraining gain (macro-F1, pretrained − scratch): {gain.format(3)}"
                    + (" (95 % interval over seeds)" if gain.has_interval else ""))
    rows.append("(mean ± sample standard deviation over seeds)")
    return "\n".join(rows)


def argument_parser(description: str = __doc__.splitlines()[0]) -> argparse.ArgumentParser:
    """The demo's options; other examples add their own to it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--corpus", choices=sorted(CORPORA), default="wordnet",
                   help="the bundled task: WordNet supersenses or fortune-cookie topics")
    p.add_argument("--labels", type=int, default=200, help="labeled training glosses")
    p.add_argument("--val-labels", type=int, default=500, help="labeled validation glosses")
    p.add_argument("--test-labels", type=int, default=None,
                   help="score a stratified sample of this many test glosses (default: all)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--pretrain-per-seed", action="store_true",
                   help="pretrain again for every seed (default: once)")
    p.add_argument("--ablations", action="store_true",
                   help="also fine-tune encoders pretrained with only one of the two steps")
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--pretrain-length", type=int, default=64)
    p.add_argument("--pretrain-batch", type=int, default=128)
    p.add_argument("--pretrain-epochs", type=float, default=1.7)
    p.add_argument("--pretrain-lr", type=float, default=3e-3)
    p.add_argument("--length", type=int, default=48, help="fine-tuning sequence length")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--freeze-epochs", type=int, default=1)
    p.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4])
    p.add_argument("--out", default="runs/wordnet_demo.json")
    p.add_argument("--encoder", default=None,
                   help="compare_policies.py: a folder with encoder.keras and tokenizer.json")
    p.add_argument("--quick", action="store_true",
                   help="a tiny budget that checks the pipeline end to end (for tests)")
    return p


def finish_args(args):
    if args.quick:
        args.vocab, args.hidden, args.layers = 2000, 32, 1
        args.pretrain_epochs, args.pretrain_length, args.epochs = 0.05, 64, 2
        args.labels, args.val_labels, args.learning_rates = 60, 60, [1e-3]
        args.test_labels = args.test_labels or (600 if args.corpus == "wordnet" else 280)
    return args


def parse_args(argv=None):
    return finish_args(argument_parser().parse_args(argv))


if __name__ == "__main__":
    run(parse_args())
