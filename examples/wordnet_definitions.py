"""Write dictionary definitions: pretrain a causal LM on WordNet glosses, fine-tune it
on (term, definition) pairs, generate for held-out nouns, score BLEU / ROUGE-L /
perplexity against the real glosses.

1. Trains a WordPiece vocabulary on ~109,000 unlabeled WordNet glosses (the held-out
   nouns' glosses excluded) and pretrains a small causal TextEncoder on them:
   co-occurrence token embeddings (PPMI + SVD), then next-token prediction on packed
   rows (`pl.objectives.CausalLM`).
2. Fine-tunes it to write a definition after a `"<term> :"` prompt, on a few thousand
   (term, definition) pairs (`pl.data.prompt_dataset`: the loss counts the
   definition's tokens only), with early stopping on the validation pairs' loss.
3. Trains the same architecture from scratch on the same pairs: its own best
   learning rate of the same grid, the same budget and early stopping. With
   `--lora RANK`, the arm "pretrained + LoRA" fine-tunes the pretrained model through
   a FineTuner with `pl.heads.CausalLMHead()` and `adapters=pl.freezing.LoRA(RANK)`:
   only the low-rank updates train (`--arms` picks the arms that fine-tune).
4. Baselines that retrieve instead of writing (with scikit-learn): the definition of
   the most similar training term by TF-IDF over character n-grams, among the
   fine-tuning pairs and among all 73,000 training nouns.
5. Each model writes a definition for each held-out test noun (with the key/value
   cache, in batches), decoding as it did best on the validation terms (greedy,
   greedy with a repetition penalty, or beam search with it), and the definitions
   are scored by corpus BLEU, sentence BLEU and ROUGE-L with 95 % bootstrap
   intervals (`Evaluator.evaluate_generation`), beside the perplexity of the real
   definition given the prompt.

    python examples/wordnet_definitions.py                # docs/results.md's table
    python examples/wordnet_definitions.py --quick        # a tiny end-to-end check
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import wordnet_demo as demo  # noqa: E402
from wordnet_demo import log  # noqa: E402

import pretrainlib as pl  # noqa: E402

TEXT_METRICS = ("bleu", "sentence_bleu", "rouge_l")
# Decoding settings tried on the validation pairs; each model writes with its best.
DECODINGS = {
    "greedy": dict(sampler="greedy"),
    "greedy, repetition penalty 1.3": dict(sampler="greedy", repetition_penalty=1.3),
    "beam 4, repetition penalty 1.3": dict(sampler="beam", num_beams=4,
                                           repetition_penalty=1.3),
}
METRICS = (*TEXT_METRICS, "perplexity")


def make_decoder(tokenizer, args) -> pl.backbones.TextEncoder:
    return pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=args.layers,
                                    hidden_dim=args.hidden, num_heads=args.heads,
                                    max_sequence_length=args.length, causal=True)


def pretrain(wn, tokenizer, args, seed: int) -> pl.backbones.TextEncoder:
    """A causal TextEncoder pretrained on the unlabeled glosses."""
    keras.utils.set_random_seed(seed)
    decoder = make_decoder(tokenizer, args)
    log(f"token embeddings from co-occurrence counts in {len(wn.unlabeled)} glosses")
    pl.text.init_token_embeddings(decoder, wn.unlabeled, tokenizer, seed=seed)
    rows = pl.data.text_dataset(wn.unlabeled, tokenizer, batch_size=args.pretrain_batch,
                                sequence_length=args.length, pack=True, seed=seed)
    steps = max(1, int(int(rows.cardinality()) * args.pretrain_epochs))
    log(f"pretraining: next-token prediction, {steps} steps of {args.pretrain_batch} packed "
        f"rows x {args.length} tokens ({args.pretrain_epochs:g} passes over the glosses)")
    pretrainer = pl.Pretrainer(decoder, pl.objectives.CausalLM(), seed=seed)
    pretrainer.compile(learning_rate=args.pretrain_lr, jit_compile=True)
    history = pretrainer.fit(rows.repeat(), steps_per_epoch=steps, epochs=1,
                             verbose=1 if sys.stdout.isatty() else 2)
    log(f"  loss {history.history['loss'][-1]:.3f}, "
        f"perplexity {history.history['perplexity'][-1]:.1f}")
    return decoder


def fitting_pairs(pairs, tokenizer, args, name: str):
    """The pairs whose `[CLS] term : definition [SEP]` row fits `args.length` tokens
    (a few very long glosses do not); says how many were left out."""
    lengths = [len(p) + len(d) + 2 for p, d in zip(tokenizer.token_ids(pairs.prompts()).to_list(),
                                                   tokenizer.token_ids(pairs.definitions)
                                                   .to_list())]
    keep = [i for i, n in enumerate(lengths) if n <= args.length]
    if len(keep) < len(pairs):
        log(f"  {name}: {len(pairs) - len(keep)} of {len(pairs)} pairs are longer than "
            f"{args.length} tokens and left out")
    return pl.datasets.Definitions([pairs.terms[i] for i in keep],
                                   [pairs.definitions[i] for i in keep])


def pair_dataset(pairs, tokenizer, args, seed: int, shuffle: bool = True):
    return pl.data.prompt_dataset(pairs.prompts(), pairs.definitions, tokenizer,
                                  batch_size=args.batch, sequence_length=args.length,
                                  shuffle=shuffle, seed=seed)


def fine_tune(build, train, val, args, learning_rates, seed: int, lora: int | None = None):
    """`(validation loss, learning rate, backbone)`: one run per learning rate, the
    best on the validation pairs' loss (the definitions' tokens only) kept. With
    `lora`, a FineTuner trains low-rank updates of that rank alone (the same loss)."""
    best = None
    for lr in learning_rates:
        keras.utils.set_random_seed(seed)
        decoder = build()
        model = (pl.Pretrainer(decoder, pl.objectives.CausalLM(), seed=seed) if lora is None
                 else pl.FineTuner(decoder, pl.heads.CausalLMHead(),
                                   adapters=pl.freezing.LoRA(lora)))
        model.compile(learning_rate=lr)
        stop = keras.callbacks.EarlyStopping("val_loss", patience=args.patience,
                                             restore_best_weights=True)
        history = model.fit(train, validation_data=val, epochs=args.epochs, callbacks=[stop],
                            verbose=0)
        loss = min(history.history["val_loss"])
        log(f"  lr={lr:g}: best validation loss {loss:.3f} after "
            f"{int(np.argmin(history.history['val_loss'])) + 1} epochs")
        if best is None or loss < best[0]:
            best = (loss, lr, decoder)
    return best


def choose_decoding(decoder, tokenizer, val, args) -> tuple[str, dict]:
    """`(name, validation ROUGE-L by name)`: the decoding of `DECODINGS` whose
    definitions of the validation terms score the best ROUGE-L."""
    generator = pl.generation.Generator(decoder, tokenizer)
    evaluator = pl.Evaluator(["rouge_l"])
    found = {}
    for name, options in DECODINGS.items():
        written = generator.generate(val.prompts(), max_new_tokens=args.max_new_tokens,
                                     batch_size=args.gen_batch, **options)
        found[name] = evaluator.evaluate_texts(val.definitions, written).metrics["rouge_l"]
    best = max(found, key=found.get)
    log("  decoding on validation (ROUGE-L): " + ", ".join(
        f"{name} {value:.3f}" for name, value in found.items()) + f"; chosen: {best}")
    return best, found


def scores(report) -> dict:
    return {name: {"value": report.metrics[name], "interval": list(report.intervals[name])}
            for name in report.metrics}


def nearest_term_definitions(train, test_terms) -> list[str] | None:
    """For each test term, the definition of the most similar training term by TF-IDF
    over character 2-4-grams (within word boundaries); None without scikit-learn."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        log("scikit-learn not installed: skipping the retrieval baselines")
        return None
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    index = NearestNeighbors(n_neighbors=1, metric="cosine").fit(
        vectorizer.fit_transform(train.terms))
    _, nearest = index.kneighbors(vectorizer.transform(test_terms))
    return [train.definitions[i] for i in nearest[:, 0]]


def run(args) -> dict:
    start = time.time()
    wn = pl.datasets.wordnet_definitions()
    log(f"WordNet: {len(wn.unlabeled)} unlabeled glosses; (noun, definition) pairs "
        f"train/validation/test {len(wn.train)}/{len(wn.validation)}/{len(wn.test)}")
    log(f"training a {args.vocab}-token WordPiece vocabulary on the glosses")
    tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)
    test = fitting_pairs(wn.test.sample(args.test_pairs, seed=0), tokenizer, args, "test")
    # Written definitions: BLEU, ROUGE-L; the real ones' perplexity given the prompt.
    evaluator = pl.Evaluator(list(METRICS), bootstrap=args.bootstrap, seed=0)
    retrieval = pl.Evaluator(list(TEXT_METRICS), bootstrap=args.bootstrap, seed=0)
    results = {name: [] for name in (*args.arms, "nearest term (fine-tuning pairs)",
                                     "nearest term (all training nouns)")}
    examples, pretrained, pretrain_seconds = {}, None, 0.0
    for seed in range(args.seeds):
        if pretrained is None or args.pretrain_per_seed:
            t = time.time()
            pretrained = pretrain(wn, tokenizer, args, seed)
            pretrain_seconds = time.time() - t
        train = fitting_pairs(wn.train.sample(args.pairs, seed=seed), tokenizer, args, "train")
        val = fitting_pairs(wn.validation.sample(args.val_pairs, seed=seed), tokenizer, args,
                            "validation")
        log(f"seed {seed}: fine-tuning on {len(train)} pairs, validating on {len(val)}, "
            f"scoring {len(test)} held-out nouns")
        train_data = pair_dataset(train, tokenizer, args, seed)
        val_data = pair_dataset(val, tokenizer, args, seed, shuffle=False)
        arms = {"pretrained": (lambda: pl.backbones.clone(pretrained), args.learning_rates,
                               None),
                "scratch": (lambda: make_decoder(tokenizer, args), args.scratch_learning_rates,
                            None),
                "pretrained + LoRA": (lambda: pl.backbones.clone(pretrained),
                                      args.lora_learning_rates, args.lora)}
        for name in args.arms:
            build, learning_rates, lora = arms[name]
            log(f"fine-tuning the {name} model")
            t = time.time()
            val_loss, lr, decoder = fine_tune(build, train_data, val_data, args, learning_rates,
                                              seed, lora=lora)
            fit_seconds = time.time() - t
            decoding, by_decoding = choose_decoding(decoder, tokenizer, val, args)
            t = time.time()
            report = evaluator.evaluate_generation(
                pl.generation.Generator(decoder, tokenizer), test.prompts(), test.definitions,
                max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch,
                **DECODINGS[decoding])
            generate_seconds, written = time.time() - t, report.predictions
            run = {**scores(report), "learning_rate": lr, "validation_loss": val_loss,
                   "decoding": decoding, "validation_rouge_l_by_decoding": by_decoding,
                   "fit_seconds": fit_seconds, "generate_seconds": generate_seconds,
                   "empty_definitions": sum(not text for text in written)}
            if name.startswith("pretrained"):
                run["pretrain_seconds"] = pretrain_seconds
            results[name].append(run)
            log(f"  {name}: BLEU {run['bleu']['value']:.2f}, ROUGE-L "
                f"{run['rouge_l']['value']:.3f}, perplexity {run['perplexity']['value']:.1f} "
                f"({len(test)} definitions scored in {generate_seconds:.0f} s)")
            if seed == 0:
                examples[name] = written[:args.show]
        for name, pool in (("nearest term (fine-tuning pairs)", train),
                           ("nearest term (all training nouns)", wn.train)):
            retrieved = nearest_term_definitions(pool, test.terms)
            if retrieved is not None:
                results[name].append(scores(retrieval.evaluate_texts(test.definitions,
                                                                     retrieved)))
                if seed == 0:
                    examples[name] = retrieved[:args.show]
    results = {name: runs for name, runs in results.items() if runs}
    shown = [{"term": term, "reference": reference,
              **{name: texts[i] for name, texts in examples.items()}}
             for i, (term, reference) in enumerate(zip(test.terms[:args.show],
                                                       test.definitions[:args.show]))]
    return write_results(args, results, shown, start)


def summarize(results: dict) -> dict:
    """`{arm: {metric: {"mean", "std", "n"}}}` over seeds."""
    summary = {}
    for name, runs in results.items():
        values = {metric: [r[metric]["value"] for r in runs] for metric in METRICS
                  if metric in runs[0]}
        summary[name] = {metric: pl.evaluation.spread(v).to_dict()
                         for metric, v in values.items()}
    return summary


def table(summary: dict, args) -> str:
    rows = [f"WordNet definitions: {args.pairs} fine-tuning pairs, {args.seeds} seed(s), "
            f"{args.test_pairs} held-out nouns",
            f"{'model':<36} {'BLEU':>14} {'sentence BLEU':>14} {'ROUGE-L':>14} "
            f"{'perplexity':>12}"]
    for name, m in summary.items():
        cells = [f"{m[k]['mean']:.2f} ± {m[k]['std']:.2f}" if k != "rouge_l"
                 else f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in TEXT_METRICS]
        ppl = f"{m['perplexity']['mean']:.1f}" if "perplexity" in m else "-"
        rows.append(f"{name:<36} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {ppl:>12}")
    return "\n".join(rows)


def write_results(args, results: dict, shown: list, start: float) -> dict:
    """The demo's JSON and table, with the example definitions printed under it."""
    footer = "".join(f"\n{row['term']}: {row['reference']}" + "".join(
        f"\n    {name}: {row.get(name, '')}" for name in results) for row in shown)
    return demo.write_results(args, results, start, table, summarize=summarize,
                              footer=footer, examples=shown)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=5000, help="fine-tuning (term, definition) pairs")
    p.add_argument("--val-pairs", type=int, default=500)
    p.add_argument("--test-pairs", type=int, default=1000, help="held-out nouns scored")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--pretrain-per-seed", action="store_true")
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--length", type=int, default=64, help="tokens per row")
    p.add_argument("--pretrain-batch", type=int, default=128)
    p.add_argument("--pretrain-epochs", type=float, default=5.0)
    p.add_argument("--pretrain-lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--learning-rates", type=float, nargs="+", default=[3e-4, 1e-4])
    p.add_argument("--scratch-learning-rates", type=float, nargs="+", default=[1e-2, 3e-3])
    p.add_argument("--lora", type=int, default=None,
                   help="add the arm 'pretrained + LoRA' with low-rank updates of this rank")
    p.add_argument("--lora-learning-rates", type=float, nargs="+", default=[3e-3, 1e-3])
    p.add_argument("--arms", nargs="+", default=None,
                   help="the arms that fine-tune (default: pretrained, scratch and, with "
                        "--lora, pretrained + LoRA)")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--gen-batch", type=int, default=250)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--show", type=int, default=8, help="example definitions printed")
    p.add_argument("--out", default="runs/wordnet_definitions.json")
    p.add_argument("--quick", action="store_true",
                   help="a tiny budget that checks the pipeline end to end (for tests)")
    args = p.parse_args(argv)
    if args.arms is None:
        args.arms = ["pretrained", "scratch"] + (["pretrained + LoRA"] if args.lora else [])
    unknown = set(args.arms) - {"pretrained", "scratch", "pretrained + LoRA"}
    if unknown:
        p.error(f"--arms: unknown arms {sorted(unknown)}")
    if "pretrained + LoRA" in args.arms and not args.lora:
        p.error("the arm 'pretrained + LoRA' needs --lora RANK")
    if args.quick:
        args.vocab, args.hidden, args.layers, args.pretrain_epochs = 1000, 32, 1, 0.02
        args.pairs, args.val_pairs, args.test_pairs, args.epochs = 200, 50, 40, 2
        args.learning_rates = args.scratch_learning_rates = args.lora_learning_rates = [1e-3]
        args.max_new_tokens, args.bootstrap, args.show = 12, 50, 2
    return args


if __name__ == "__main__":
    run(parse_args())
