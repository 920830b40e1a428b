"""Does the unlabeled pool pay at fine-tuning too? The recipe with and without it.

    python examples/semi_supervised_study.py --task text --seeds 3 \\
        --out docs/results/semi_supervised_text.json
    python examples/semi_supervised_study.py --task images --seeds 3 \\
        --out docs/results/semi_supervised_images.json

`--task text`: the WordNet recipe (`wordnet_demo.py`: an encoder pretrained once on
the unlabeled glosses, FreezeThenUnfreeze, early stopping on validation macro-F1)
at each of `--label-counts` labels, fine-tuned on the labels alone, with
`pl.semi.PseudoLabel` and with `pl.semi.Consistency` (token replacement), the pool
being the unlabeled glosses minus every gloss of the validation and test
synsets, and with self-training (`Consistency` with the recipe's trained model as
the teacher of a fresh student, as Noisy Student does); then prompts: the pretrained masked-LM head filling `[MASK]` in a cloze
template with one word per class (`pl.text.Prompt`,
`pl.heads.ClozeClassifier.from_masked_lm`), with no labels (zero-shot) and
fine-tuned on the labels (PET-style), each also calibrated on the pool
(`ClozeClassifier.calibrate`: class biases shifted so that the average prediction
on 2,000 unlabeled glosses is uniform), and the PET model teaching a fresh prompted
student on the pool ("+ prompt + self-training"). Each seed's template is the one of
`--templates` with the best zero-shot macro-F1 on its labeled training examples
(picked separately for the calibrated arms).
Beside them, the same architecture from scratch with `--scratch-labels` labels
(the bar the pretrained few-label arms aim at).

`--task images`: the library's ConvNet from scratch on 10 Fashion-MNIST labels
per class (flip and shift augmentation on the labels), alone and with
`pl.semi.Consistency` (FixMatch's weak and strong views) on the 18,000 unlabeled
training images; epochs of `--steps-per-epoch` steps, the labels read round and
round, for both arms. With `--backbone` (a ConvNet pretrained on the same unlabeled
images, e.g. by SimCLR: `fashion_mnist_transfer.py --save-backbone`), two more arms:
a linear head on its frozen features, and the backbone fine-tuned with
`pl.semi.Consistency` under `FreezeThenUnfreeze` (SimCLR then FixMatch, as SelfMatch
does), each picking its rate from its own grid on validation:

    python examples/semi_supervised_study.py --task images --seeds 3 \\
        --backbone runs/simclr_backbone.keras --out docs/results/selfmatch_images.json

Every arm is scored on the test split; the table gives mean ± std over seeds and
the per-seed gain of each semi-supervised arm over the recipe.
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


class TextTask:
    def __init__(self, args):
        self.args = args
        self.wn = wn = pl.datasets.wordnet_supersenses()
        self.tokenizer = pl.text.WordPieceTokenizer.train(wn.unlabeled, vocab_size=args.vocab)
        self.encoder, self.pretrainer = demo.pretrain(wn, self.tokenizer, args, seed=0,
                                                      keep_head=True)
        self.words = verbalizer(self.tokenizer, wn.class_names)
        demo.log(f"verbalizer: {self.words}")
        self.test_split = demo.test_split(wn, args)
        self.test = demo.labeled_dataset(self.test_split, self.tokenizer, args, 0, shuffle=False)
        held_out = {t[:40] for t in list(wn.test.texts) + list(wn.validation.texts)}
        pool = [t for t in wn.unlabeled if t[:40] not in held_out]
        demo.log(f"pool: {len(pool)} glosses ({len(wn.unlabeled) - len(pool)} of validation "
                 "and test synsets left out)")
        self.pool = list(np.random.default_rng(0).permutation(pool)[:args.pool])

    def arms(self):
        a = self.args
        arms = {"recipe": None,
                "+ pseudo-label": pl.semi.PseudoLabel(threshold=a.threshold, ratio=a.ratio),
                "+ consistency": pl.semi.Consistency(threshold=a.threshold, ratio=a.ratio,
                                                     token_replacement=a.token_replacement),
                "+ self-training": "teacher",
                "zero-shot prompt": "prompt", "zero-shot prompt, calibrated": "prompt",
                "+ prompt": "prompt", "+ calibrated prompt": "prompt",
                "+ prompt + self-training": "prompt"}
        return {arm: method for arm, method in arms.items() if arm in a.arms}

    def run(self, labels, seed):
        args, wn = self.args, self.wn
        part = wn.train.sample(labels, seed=seed)
        train = demo.labeled_dataset(part, self.tokenizer, args, seed)
        val_part = wn.validation.sample(args.val_labels, seed=seed)
        val = demo.labeled_dataset(val_part, self.tokenizer, args, seed, shuffle=False)
        out = {}
        arms = self.arms()
        teacher = prompt_teacher = None  # the recipe's and the PET arm's trained models
        if any("prompt" in arm for arm in arms):
            prompt, out["prompt templates"] = self.pick_template(part)
        if any("calibrated" in arm for arm in arms):
            calibrated, out["calibrated prompt templates"] = self.pick_template(
                part, calibrate=True)
        for arm, method in arms.items():
            if arm == "zero-shot prompt":
                out[arm] = self.zero_shot(prompt, self.prompted(self.test_split, prompt, 0,
                                                                shuffle=False))
                continue
            if arm == "zero-shot prompt, calibrated":
                out[arm] = self.zero_shot(calibrated, self.prompted(
                    self.test_split, calibrated, 0, shuffle=False), calibrate=True)
                continue
            if method == "prompt":  # PET: the cloze head fine-tuned on the labels
                cal = arm == "+ calibrated prompt"
                use = calibrated if cal else prompt
                teacher_of = prompt_teacher if arm == "+ prompt + self-training" else None
                out[arm], model = scored(
                    lambda p=use, c=cal, t=teacher_of: self.cloze_tuner(
                        p, pl.backbones.clone(self.encoder), c, t),
                    self.prompted(part, use, seed),
                    self.prompted(val_part, use, seed, shuffle=False),
                    self.prompted(self.test_split, use, 0, shuffle=False), args, seed,
                    model=True, **({} if teacher_of is None else {"unlabeled": self.pool}))
                if arm == "+ prompt":
                    prompt_teacher = model
                continue
            if method == "teacher":  # the recipe's model teaches a fresh student
                method = pl.semi.Consistency(threshold=args.threshold, ratio=args.ratio,
                                             token_replacement=args.token_replacement,
                                             teacher=teacher)
            build = lambda m=method: pl.FineTuner(  # noqa: E731
                pl.backbones.clone(self.encoder), pl.heads.Classifier(len(wn.class_names)),
                policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs),
                preprocessor=pl.text.TextPreprocessor(self.tokenizer, args.length),
                semi_supervised=m)
            extra = {} if method is None else {"unlabeled": self.pool}
            out[arm], model = scored(build, train, val, self.test, args, seed, model=True,
                                     **extra)
            if arm == "recipe":
                teacher = model
        return out

    def prompted(self, split, prompt, seed, shuffle=True):
        return pl.data.text_dataset(split.texts, prompt, labels=split.labels,
                                    batch_size=self.args.batch,
                                    sequence_length=self.args.length, shuffle=shuffle,
                                    seed=seed)

    def cloze_tuner(self, prompt, encoder, calibrate=False, teacher=None) -> pl.FineTuner:
        """A FineTuner on `encoder` with the pretrained masked-LM head scoring
        `prompt`'s words; with `calibrate`, its biases shifted so that its average
        prediction on (the first 2,000 of) the unlabeled pool is uniform; with a
        `teacher`, learning from the teacher's labels of the pool too."""
        method = None if teacher is None else pl.semi.Consistency(
            threshold=self.args.threshold, ratio=self.args.ratio,
            token_replacement=self.args.token_replacement, teacher=teacher)
        ft = pl.FineTuner(encoder,
                          pl.heads.ClozeClassifier.from_masked_lm(self.pretrainer, prompt),
                          policy=pl.freezing.FreezeThenUnfreeze(self.args.freeze_epochs),
                          preprocessor=prompt.preprocessor(self.args.length),
                          semi_supervised=method)
        if calibrate:
            ft.head.calibrate(ft, self.pool[:2000], batch_size=256)
        return ft

    def zero_shot(self, prompt, data, calibrate=False) -> dict:
        ft = self.cloze_tuner(prompt, self.encoder, calibrate)
        report = pl.Evaluator(metrics=["accuracy", "macro_f1"]).evaluate(ft, data)
        return dict(report.metrics)

    def pick_template(self, part, calibrate=False):
        """The template whose zero-shot macro-F1 on the labeled training examples is
        highest (the only labels a few-label user has); every template's score kept."""
        scores = {}
        for template in self.args.templates:
            prompt = pl.text.Prompt(self.tokenizer, template, self.words)
            scores[template] = self.zero_shot(prompt, self.prompted(part, prompt, 0, False),
                                              calibrate)
        best = max(scores, key=lambda t: scores[t]["macro_f1"])
        demo.log(f"  template {best!r}{', calibrated' if calibrate else ''}: zero-shot "
                 f"macro-F1 on the training labels {scores[best]['macro_f1']:.3f} "
                 f"(of {len(scores)} templates)")
        return pl.text.Prompt(self.tokenizer, best, self.words), {"picked": best,
                        "train_macro_f1": {t: s["macro_f1"] for t, s in scores.items()}}

    def reference(self, seed):
        """The same architecture from scratch with `--scratch-labels` labels."""
        args, wn = self.args, self.wn
        train = demo.labeled_dataset(wn.train.sample(args.scratch_labels, seed=seed),
                                     self.tokenizer, args, seed)
        val = demo.labeled_dataset(wn.validation.sample(args.val_labels, seed=seed),
                                   self.tokenizer, args, seed, shuffle=False)
        build = lambda: pl.FineTuner(demo.make_encoder(self.tokenizer, args),  # noqa: E731
                                     pl.heads.Classifier(len(wn.class_names)),
                                     policy=pl.freezing.FullFineTune())
        return scored(build, train, val, self.test, args, seed)


class ImageTask:
    def __init__(self, args):
        self.args = args
        self.fm = pl.datasets.fashion_mnist()
        test = self.fm.test if args.test_labels is None else self.fm.test.sample(
            args.test_labels, seed=0)
        self.test = pl.data.image_dataset(test.images, test.labels, batch_size=256,
                                          shuffle=False)
        self.pool = self.fm.unlabeled[:args.pool]
        # A backbone pretrained on the unlabeled images (e.g. SimCLR, saved by
        # fashion_mnist_transfer.py --save-backbone): SelfMatch's recipe.
        self.backbone = (keras.saving.load_model(args.backbone) if args.backbone
                         else None)

    def arms(self):
        a = self.args
        consistency = pl.semi.Consistency(threshold=a.threshold, ratio=a.ratio)
        arms = {"recipe": None, "+ consistency": consistency}
        if self.backbone is not None:
            arms.update({"pretrained, frozen": None, "pretrained + consistency": consistency})
        return arms

    def run(self, labels, seed):
        args, fm = self.args, self.fm
        part = fm.train.sample(labels, seed=seed)
        train = pl.data.image_dataset(part.images, part.labels, batch_size=args.batch,
                                      seed=seed, augment=pl.data.flip_and_shift())
        # A linear head on frozen features reads them unaugmented: computed once, cached.
        plain = pl.data.image_dataset(part.images, part.labels, batch_size=args.batch,
                                      seed=seed)
        val = pl.data.image_dataset(fm.validation.images, fm.validation.labels,
                                    batch_size=256, shuffle=False)
        out = {}
        for arm, method in self.arms().items():
            frozen = arm == "pretrained, frozen"
            extra = {} if method is None else {"unlabeled": self.pool}
            rates = (args.frozen_learning_rates if frozen
                     else args.pretrained_learning_rates if arm.startswith("pretrained")
                     else args.learning_rates)
            out[arm] = scored(lambda a=arm, m=method: self.fine_tuner(a, m),
                              plain if frozen else train, val, self.test, args, seed,
                              rates=rates, steps_per_epoch=args.steps_per_epoch, **extra)
        return out

    def fine_tuner(self, arm: str, method) -> pl.FineTuner:
        """The arm's model: the ConvNet from scratch, or a copy of the pretrained one
        (frozen under a linear head, or fine-tuned from a head-only epoch)."""
        if arm == "pretrained, frozen":
            return pl.FineTuner(pl.backbones.clone(self.backbone),
                                pl.heads.Classifier(10, dropout=0.0),
                                policy=pl.freezing.FeatureExtraction(), semi_supervised=method)
        if arm.startswith("pretrained"):
            return pl.FineTuner(pl.backbones.clone(self.backbone), pl.heads.Classifier(10),
                                policy=pl.freezing.FreezeThenUnfreeze(self.args.freeze_epochs),
                                semi_supervised=method)
        return pl.FineTuner(pl.backbones.ConvNet(widths=tuple(self.args.widths)),
                            pl.heads.Classifier(10), policy=pl.freezing.FullFineTune(),
                            semi_supervised=method)

    def reference(self, seed):
        return None


SYNONYMS = {"artifact": ["object", "device", "tool", "thing"],
            "location": ["place", "region", "area"], "food": ["dish", "meal"],
            "person": ["man", "someone"], "animal": ["creature", "beast"],
            "plant": ["tree", "herb"]}


def verbalizer(tokenizer, class_names) -> list[str]:
    """Each class's name as its word, or the first synonym that is one word piece."""
    words = []
    for name in class_names:
        for word in [name, *SYNONYMS.get(name, [])]:
            if len(tokenizer.token_ids([word])[0]) == 1:
                words.append(word)
                break
        else:
            raise ValueError(f"no one-piece word for class {name!r}")
    return words


def scored(build, train, val, test, args, seed, model=False, rates=None, **fit):
    """The test scores of the best of `build`'s runs, one per learning rate of `rates`
    (default `--learning-rates`), and the model, with `model`."""
    keep = model
    start = time.time()
    _, lr, model = demo.fine_tune(build, train, val, args, rates or args.learning_rates,
                                  seed, **fit)
    report = pl.Evaluator(metrics=["accuracy", "macro_f1"]).evaluate(model, test)
    result = {**report.metrics, "learning_rate": lr, "seconds": time.time() - start,
              "epochs": len(model.history.epoch)}
    demo.log(f"    test macro-F1 {result['macro_f1']:.4f}, accuracy "
             f"{result['accuracy']:.4f} ({result['seconds']:.0f} s)")
    return (result, model) if keep else result


def run(args) -> dict:
    start = time.time()
    task = TextTask(args) if args.task == "text" else ImageTask(args)
    runs = {str(n): [] for n in args.label_counts}
    references = []
    for seed in range(args.seeds):
        for labels in args.label_counts:
            demo.log(f"seed {seed}, {labels} labels")
            runs[str(labels)].append(task.run(labels, seed))
        if args.task == "text" and args.scratch_labels:
            demo.log(f"seed {seed}, scratch with {args.scratch_labels} labels")
            references.append(task.reference(seed))
    results = {"config": vars(args), "runs": runs, "scratch_reference": references,
               "summary": summarize(runs, references), "wall_seconds": time.time() - start}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(table(results["summary"], args))
    return results


def summarize(runs: dict, references: list) -> dict:
    metric = "macro_f1"
    summary = {}
    for labels, seeds in runs.items():
        for arm in [a for a in seeds[0] if "prompt templates" not in a]:
            values = [s[arm][metric] for s in seeds]
            gains = [s[arm][metric] - s["recipe"][metric] for s in seeds]
            summary.setdefault(labels, {})[arm] = {
                **pl.evaluation.spread(values).to_dict(),
                "gains": [round(g, 4) for g in gains], "values": values}
    if references:
        values = [r[metric] for r in references]
        summary["scratch"] = {**pl.evaluation.spread(values).to_dict(), "values": values}
    return summary


def table(summary: dict, args) -> str:
    lines = ["| labels | arm | test macro-F1 | gain over the recipe, per seed |",
             "|---|---|---|---|"]
    for labels, arms in summary.items():
        if labels == "scratch":
            continue
        for arm, s in arms.items():
            gains = "" if arm == "recipe" else ", ".join(f"{g:+.3f}" for g in s["gains"])
            lines.append(f"| {labels} | {arm} | {s['mean']:.3f} ± {s['std']:.3f} | {gains} |")
    if "scratch" in summary:
        s = summary["scratch"]
        lines.append(f"| {args.scratch_labels} | scratch (same architecture) | "
                     f"{s['mean']:.3f} ± {s['std']:.3f} | |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = demo.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--task", choices=["text", "images"], default="text")
    p.add_argument("--label-counts", type=int, nargs="+", default=None)
    p.add_argument("--scratch-labels", type=int, default=2000)
    p.add_argument("--pool", type=int, default=20000, help="unlabeled examples in the pool")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--ratio", type=int, default=2)
    p.add_argument("--token-replacement", type=float, default=0.2)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--backbone",
                   help="images: a pretrained backbone (.keras) for the pretrained arms")
    p.add_argument("--pretrained-learning-rates", type=float, nargs="+", default=[3e-3, 1e-3],
                   help="images: the pretrained + consistency arm's grid")
    p.add_argument("--frozen-learning-rates", type=float, nargs="+", default=[1e-2, 3e-3],
                   help="images: the frozen pretrained arm's grid")
    p.add_argument("--steps-per-epoch", type=int, default=50,
                   help="images: steps per epoch (the labels are read round and round)")
    p.add_argument("--arms", nargs="+", default=["recipe", "+ pseudo-label", "+ consistency",
                                                  "+ self-training", "zero-shot prompt",
                                                  "+ prompt"],
                   help="text arms to run")
    p.add_argument("--templates", nargs="+",
                   default=["a [MASK] : {text}", "[MASK] : {text}", "any [MASK] , {text}",
                            "the [MASK] {text}"],
                   help="prompt templates; each seed uses the one best on its labels")
    args = p.parse_args(argv)
    if "recipe" not in args.arms:
        p.error("--arms must include 'recipe' (the other arms are compared with it)")
    if "+ prompt + self-training" in args.arms and "+ prompt" not in args.arms:
        p.error("--arms: '+ prompt + self-training' learns from the '+ prompt' arm's "
                "model: run that arm too")
    if args.task == "images":
        args.label_counts = args.label_counts or [100]
        args.threshold = args.threshold or 0.95
        args.batch, args.epochs, args.patience = 16, 30, 8
        args.learning_rates = [3e-3]
    else:
        args.label_counts = args.label_counts or [50, 200]
        args.threshold = args.threshold or 0.8
    args = demo.finish_args(args)
    if args.quick:
        args.label_counts, args.pool, args.scratch_labels = [60], 256, 120
        args.steps_per_epoch = 5
    return args


if __name__ == "__main__":
    run(parse_args())
