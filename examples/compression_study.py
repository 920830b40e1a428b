"""Compressing a fine-tuned classifier: float32 vs int8 vs int4 vs pruned vs a
distilled student, in macro-F1, size and CPU latency, over seeds.

    python examples/compression_study.py --seeds 3 --out docs/results/compression_study.json
    python examples/compression_study.py --task images --seeds 3 \
        --out docs/results/compression_study_images.json

`--task text` (default) compresses the WordNet supersense classifier, the demo's
recipe (`wordnet_demo.py`: co-occurrence token embeddings, masked-LM pretraining
once, then 200 labels under FreezeThenUnfreeze with the learning rate picked on
validation). `--task images` compresses the library's `ConvNet` trained on 2,000
labeled Fashion-MNIST images (200 per class; rate picked on validation). For each
seed the classifier is then

- quantized after training with `pl.compress.quantize` (int8, int4);
- pruned to 50 % and 80 % with `pl.compress.prune` and a gradual schedule during a
  recovery fine-tune on the same labels (lower rate, same budget for both);
- distilled into a smaller student (text: one layer half as wide with co-occurrence
  embeddings of its width; images: a ConvNet half as wide) by
  `pl.objectives.Distillation` on unlabeled examples, then fine-tuned on the labels.

Every arm is scored on the full test split (4,396 glosses; 5,000 images) by
`pl.compress.measure`: macro-F1, weights on disk (raw and gzipped) and warm CPU
latency at batch 1 and 32.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import wordnet_demo as demo  # noqa: E402 -- the recipe the study compresses

import pretrainlib as pl  # noqa: E402

ARMS = ("float32", "int8", "int4", "pruned 50%", "pruned 80%", "distilled student")


class TextTask:
    """The WordNet supersense classifier, pretrained once."""

    title = "WordNet supersenses, 200 labels"

    def __init__(self, args):
        self.args = args
        self.wn = pl.datasets.wordnet_supersenses()
        self.tokenizer = pl.text.WordPieceTokenizer.train(self.wn.unlabeled,
                                                          vocab_size=args.vocab)
        self.encoder = demo.pretrain(self.wn, self.tokenizer, args, seed=0)
        self.test = demo.labeled_dataset(demo.test_split(self.wn, args), self.tokenizer,
                                         args, 0, shuffle=False)

    def data(self, seed):
        args, wn = self.args, self.wn
        return (demo.labeled_dataset(wn.train.sample(args.labels, seed=seed), self.tokenizer,
                                     args, seed),
                demo.labeled_dataset(wn.validation.sample(args.val_labels, seed=seed),
                                     self.tokenizer, args, seed, shuffle=False))

    def fine_tuned(self, train, val, seed):
        args = self.args
        build = lambda: pl.FineTuner(  # noqa: E731
            pl.backbones.clone(self.encoder), pl.heads.Classifier(len(self.wn.class_names)),
            policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs))
        return demo.fine_tune(build, train, val, args, args.learning_rates, seed)[2]

    def student_backbone(self, seed):
        args = self.args
        student = pl.backbones.TextEncoder(self.tokenizer.vocab_size, num_layers=1,
                                           hidden_dim=args.hidden // 2, num_heads=2,
                                           max_sequence_length=args.pretrain_length)
        pl.text.init_token_embeddings(student, self.wn.unlabeled, self.tokenizer, seed=seed)
        unlabeled = pl.data.text_dataset(self.wn.unlabeled[:args.distill_examples],
                                         self.tokenizer, batch_size=64,
                                         sequence_length=args.length, seed=seed)
        return student, unlabeled


class ImageTask:
    """The library's ConvNet on labeled Fashion-MNIST images, from scratch."""

    title = "Fashion-MNIST, ConvNet"

    def __init__(self, args):
        self.args = args
        self.fm = pl.datasets.fashion_mnist()
        test = self.fm.test if args.test_labels is None else self.fm.test.sample(
            args.test_labels, seed=0)
        self.test = self.dataset(test, 0, shuffle=False)
        self.title = f"Fashion-MNIST, ConvNet, {args.labels} labels"

    def dataset(self, split, seed, shuffle=True):
        return pl.data.image_dataset(split.images, split.labels, batch_size=self.args.batch,
                                     shuffle=shuffle, seed=seed)

    def data(self, seed):
        return (self.dataset(self.fm.train.sample(self.args.labels, seed=seed), seed),
                self.dataset(self.fm.validation, seed, shuffle=False))

    def fine_tuned(self, train, val, seed):
        args = self.args
        build = lambda: pl.FineTuner(  # noqa: E731
            pl.backbones.ConvNet(widths=tuple(args.widths)), pl.heads.Classifier(10),
            policy=pl.freezing.FullFineTune())
        return demo.fine_tune(build, train, val, args, args.learning_rates, seed)[2]

    def student_backbone(self, seed):
        args = self.args
        student = pl.backbones.ConvNet(widths=tuple(w // 2 for w in args.widths))
        unlabeled = pl.data.image_dataset(self.fm.unlabeled[:args.distill_examples],
                                          batch_size=args.batch, seed=seed)
        return student, unlabeled


def recover_pruned(float_path, sparsity, train, val, args, seed):
    """The float model pruned to `sparsity` gradually while fine-tuned on the labels."""
    keras.utils.set_random_seed(seed)
    model = keras.saving.load_model(float_path)
    pruning = pl.compress.prune(model, sparsity=sparsity,
                                schedule=pl.compress.GradualSchedule(frequency=5))
    model.compile(learning_rate=min(args.learning_rates) / 2)
    model.fit(train, validation_data=val, epochs=args.recovery_epochs, verbose=0,
              callbacks=[pruning])
    pl.compress.strip_pruning(model)
    return model


def distilled_student(task, teacher, train, val, seed):
    """A smaller backbone taught by `teacher` on unlabeled examples, then fine-tuned."""
    args = task.args
    keras.utils.set_random_seed(seed)
    student, unlabeled = task.student_backbone(seed)
    objective = pl.objectives.Distillation(teacher, temperature=2.0, alpha=0.0)
    pre = pl.Pretrainer(student, objective)
    pre.compile(learning_rate=1e-3)
    pre.fit(unlabeled, epochs=args.distill_epochs, verbose=0)
    build = lambda: pl.FineTuner(student, objective.head,  # noqa: E731
                                 policy=pl.freezing.FullFineTune())
    _, _, model = demo.fine_tune(build, train, val, args, [min(args.learning_rates)], seed)
    return model


def run(args) -> dict:
    start = time.time()
    task = (TextTask if args.task == "text" else ImageTask)(args)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="compression-study-"))
    runs = {arm: [] for arm in ARMS}

    def record(arm, model, seed):
        m = pl.compress.measure(model, task.test, repeats=args.repeats)
        runs[arm].append({"seed": seed, **m.as_dict()})
        demo.log(f"  {arm}: {m}")

    for seed in range(args.seeds):
        train, val = task.data(seed)
        demo.log(f"seed {seed}: fine-tuning the float32 classifier")
        model = task.fine_tuned(train, val, seed)
        float_path = folder / f"float-{seed}.keras"
        model.save(float_path)
        record("float32", model, seed)
        for mode in ("int8", "int4"):
            quantized = keras.saving.load_model(float_path)
            report = pl.compress.quantize(quantized, mode)
            if seed == 0:
                demo.log(f"  {report}")
            record(mode, quantized, seed)
        for sparsity in (0.5, 0.8):
            pruned = recover_pruned(float_path, sparsity, train, val, args, seed)
            record(f"pruned {int(sparsity * 100)}%", pruned, seed)
        record("distilled student", distilled_student(task, model, train, val, seed), seed)

    summary = {arm: summarize(values) for arm, values in runs.items()}
    result = {"config": vars(args), "summary": summary, "runs": runs,
              "wall_seconds": time.time() - start,
              "date": time.strftime("%Y-%m-%d")}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(summary))
    plot(summary, out.with_suffix(".png"), task.title)
    return result


def summarize(values: list) -> dict:
    def stat(key, pick=lambda r, k: r[k]):
        spread = pl.evaluation.spread([pick(r, key) for r in values])
        return {"mean": spread.mean, "std": spread.std}

    latency = lambda r, k: r["latency_ms"][k]  # noqa: E731
    return {"macro_f1": stat("macro_f1", lambda r, k: r["metrics"][k]),
            "accuracy": stat("accuracy", lambda r, k: r["metrics"][k]),
            "size_bytes": stat("size_bytes"), "gzip_bytes": stat("gzip_bytes"),
            "latency_ms_1": stat(1, latency), "latency_ms_32": stat(32, latency),
            "parameters": values[0]["parameters"], "n": len(values)}


def table(summary: dict) -> str:
    base = summary["float32"]
    rows = ["| arm | macro-F1 | vs float32 | weights | smaller | gzipped | batch 1 | batch 32 |",
            "|---|---|---|---|---|---|---|---|"]
    for arm, s in summary.items():
        f1, size = s["macro_f1"], s["size_bytes"]["mean"]
        rows.append(
            f"| {arm} | {f1['mean']:.3f} ± {f1['std']:.3f} | "
            f"{100 * (f1['mean'] - base['macro_f1']['mean']):+.1f} pts | "
            f"{size / 2**20:.2f} MiB | {base['size_bytes']['mean'] / size:.1f}× | "
            f"{s['gzip_bytes']['mean'] / 2**20:.2f} MiB | "
            f"{s['latency_ms_1']['mean']:.2f} ms | {s['latency_ms_32']['mean']:.2f} ms |")
    return "\n".join(rows)


def plot(summary: dict, path: pathlib.Path, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        demo.log("matplotlib not installed: no figure")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    base = summary["float32"]["macro_f1"]
    # The float32 model's spread over seeds, as a band: arms inside it are level with it.
    ax.axhspan(base["mean"] - base["std"], base["mean"] + base["std"], color="0.9",
               label="float32, mean ± std")
    markers = "osD^vPX*"
    for i, (arm, s) in enumerate(summary.items()):  # a legend, not labels that overlap
        ax.errorbar(s["gzip_bytes"]["mean"] / 2**20, s["macro_f1"]["mean"],
                    yerr=s["macro_f1"]["std"], fmt=markers[i % len(markers)], capsize=3,
                    label=arm)
    means = [s["macro_f1"]["mean"] for s in summary.values()]
    middle = (max(means) + min(means)) / 2  # at least 0.1 of macro-F1 shown: noise stays small
    half = max(0.05, (max(means) - min(means)) / 2 + 0.02)
    ax.set_ylim(middle - half, middle + half)
    ax.set_xlim(left=0)
    ax.set_xlabel("weights, gzipped (MiB)")
    ax.set_ylabel("test macro-F1 (mean ± sample std over seeds)")
    ax.set_title(f"{title}: size vs macro-F1")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


IMAGE_DEFAULTS = dict(labels=2000, batch=64, epochs=15, patience=3,
                      learning_rates=[3e-3, 1e-3], distill_epochs=3)


def parse_args(argv=None):
    p = demo.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--task", choices=("text", "images"), default="text")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128],
                   help="the ConvNet's stage widths (--task images)")
    p.add_argument("--recovery-epochs", type=int, default=8)
    p.add_argument("--distill-examples", "--distill-texts", dest="distill_examples",
                   type=int, default=20000, help="unlabeled examples the student learns on")
    p.add_argument("--distill-epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30, help="timed calls per batch size")
    p.set_defaults(out="runs/compression_study.json")
    if p.parse_known_args(argv)[0].task == "images":  # the image recipe's own defaults
        p.set_defaults(**IMAGE_DEFAULTS)
    args = demo.finish_args(p.parse_args(argv))
    if args.quick:
        args.recovery_epochs, args.distill_examples, args.distill_epochs = 2, 500, 1
        args.repeats = 3
        if args.task == "images":
            args.labels, args.widths = 200, [8, 16]
    return args


if __name__ == "__main__":
    run(parse_args())
