"""Does pretraining pay off on images? Transfer studies on real Fashion-MNIST.

`--study masked`: pretrain a ConvNet by masked image modeling (`pl.objectives.
Autoencoder`, SimMIM-style) on the 18,000 unlabeled training images, then fine-tune
it on 10 labels per class (100 images).

`--study supervised`: pretrain the ConvNet by classifying the five classes
t-shirt/top, trouser, pullover, dress, coat (9,000 labeled images), drop that head,
and fine-tune on the other five (sandal, shirt, sneaker, bag, ankle boot) with
10 labels per class.

Both compare with the same ConvNet trained from scratch on the same labels, and the
scratch arm is fair: BatchNorm momentum 0.9 (Keras's 0.99 leaves it near chance on
this budget), its own learning rate chosen from the same grid on validation
accuracy, the same data, epoch budget and early stopping. Prints a table and
writes JSON (mean ± std over seeds of test accuracy and macro-F1).

    python examples/fashion_mnist_transfer.py --study masked --seeds 3 \\
        --out docs/results/fashion_mnist_masked.json
    python examples/fashion_mnist_transfer.py --study supervised --seeds 3 \\
        --out docs/results/fashion_mnist_supervised.json

`--study simclr` (or `byol`, `simsiam`) pretrains with a two-view objective on the
unlabeled images instead; `--arms "pretrained, frozen"` adds a linear head on the
frozen backbone's cached features; `--probe` scores the frozen features of the
pretrained and of a random backbone (linear probe and kNN on every labeled training
image); `--save-backbone` / `--load-backbone` keep a pretraining for later runs:

    python examples/fashion_mnist_transfer.py --study simclr --seeds 3 --widths 32 64 128 \\
        --augment 1 --pretrain-epochs 15 --pretrain-batch 256 --pretrain-lr 2e-3 --probe \\
        --save-backbone runs/simclr_backbone.keras --out docs/results/fashion_mnist_simclr.json
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from wordnet_demo import fine_tune, log, write_results  # noqa: E402

import pretrainlib as pl  # noqa: E402

SOURCE, TARGET = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
# The two-view objectives bring their own augmentation (crops, flips, contrast).
CONTRASTIVE = {
    "simclr": lambda args: pl.objectives.SimCLR(temperature=args.temperature,
                                                crop_scale=(args.crop_min, 1.0)),
    "byol": lambda args: pl.objectives.BYOL(target_decay=args.target_decay,
                                            crop_scale=(args.crop_min, 1.0)),
    "simsiam": lambda args: pl.objectives.SimSiam(crop_scale=(args.crop_min, 1.0)),
}


def make_backbone(args) -> pl.backbones.ConvNet:
    return pl.backbones.ConvNet(widths=tuple(args.widths))


def augmentation(args):
    if not args.augment:
        return None
    return [keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
            keras.layers.RandomFlip("horizontal")]


def pretrain(args, source, seed: int):
    """A ConvNet pretrained on `source` with the study's objective."""
    keras.utils.set_random_seed(seed)
    backbone = make_backbone(args)
    if args.study == "masked":
        objective = pl.objectives.Autoencoder(mask_ratio=args.mask_ratio,
                                              patch_size=args.patch_size)
        data = pl.data.image_dataset(source.images, batch_size=args.pretrain_batch,
                                     augment=augmentation(args), seed=seed)
    elif args.study in CONTRASTIVE:
        objective = CONTRASTIVE[args.study](args)
        data = pl.data.image_dataset(source.images, batch_size=args.pretrain_batch, seed=seed)
    else:
        objective = pl.objectives.ImageClassification(len(source.class_names),
                                                      label_smoothing=0.1)
        data = pl.data.image_dataset(source.images, source.labels,
                                     batch_size=args.pretrain_batch,
                                     augment=augmentation(args), seed=seed)
    pretrainer = pl.Pretrainer(backbone, objective)
    pretrainer.compile(learning_rate=args.pretrain_lr, jit_compile=True)
    log(f"pretraining ({args.study}): {args.pretrain_epochs} epochs over {len(source)} images")
    history = pretrainer.fit(data, epochs=args.pretrain_epochs,
                             verbose=1 if sys.stdout.isatty() else 2)
    log("  final " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.history.items()))
    return backbone


def run(args) -> dict:
    start = time.time()
    fm = pl.datasets.fashion_mnist()
    if args.study != "supervised":
        source = fm.train
        if args.quick:
            source = source.sample(1024, seed=0)
        splits = (fm.train, fm.validation, fm.test)
    else:
        source = fm.train.classes(SOURCE)
        if args.quick:
            source = source.sample(1024, seed=0)
        splits = tuple(split.classes(TARGET) for split in (fm.train, fm.validation, fm.test))
    train_pool, val_pool, test = splits
    num_classes = len(train_pool.class_names)
    evaluator = pl.Evaluator(metrics=["accuracy", "macro_f1"], class_names=train_pool.class_names)
    test_ds = pl.data.image_dataset(test.images, test.labels, batch_size=256, shuffle=False)
    results = {arm: [] for arm in args.arms}
    backbone, probes = None, {}
    for seed in range(args.seeds):
        if args.load_backbone and backbone is None:
            backbone, pretrain_seconds = keras.saving.load_model(args.load_backbone), 0.0
            log(f"pretrained backbone loaded from {args.load_backbone}")
        if backbone is None or args.pretrain_per_seed:
            t = time.time()
            backbone = pretrain(args, source, seed)
            pretrain_seconds = time.time() - t
            if args.save_backbone:
                backbone.save(args.save_backbone)
            if args.probe and not probes:
                probes = probe(args, backbone, fm)
        if args.probe_only:
            break
        train = train_pool.sample(args.labels_per_class * num_classes, seed=seed)
        val = val_pool.sample(min(args.val_images, len(val_pool)), seed=seed)
        log(f"seed {seed}: {len(train)} labeled images, {len(val)} for validation, "
            f"{len(test)} test images")
        train_ds = pl.data.image_dataset(train.images, train.labels, batch_size=args.batch,
                                         augment=augmentation(args), seed=seed)
        val_ds = pl.data.image_dataset(val.images, val.labels, batch_size=256, shuffle=False)
        # The frozen arm trains a linear head on the backbone's features (no dropout,
        # no augmentation, so the features are computed once and cached).
        plain_ds = pl.data.image_dataset(train.images, train.labels, batch_size=args.batch,
                                         seed=seed)
        builds = {
            "pretrained": (lambda: pl.FineTuner(
                pl.backbones.clone(backbone), pl.heads.Classifier(num_classes),
                policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs)), train_ds),
            "pretrained, frozen": (lambda: pl.FineTuner(
                pl.backbones.clone(backbone), pl.heads.Classifier(num_classes, dropout=0.0),
                policy=pl.freezing.FeatureExtraction()), plain_ds),
            "scratch": (lambda: pl.FineTuner(
                make_backbone(args), pl.heads.Classifier(num_classes),
                policy=pl.freezing.FullFineTune()), train_ds),
        }
        for name in args.arms:
            build, data = builds[name]
            log(f"fine-tuning the {name} model")
            t = time.time()
            rates = (args.frozen_learning_rates or args.learning_rates
                     if name == "pretrained, frozen" else args.learning_rates)
            _, lr, model = fine_tune(build, data, val_ds, args, rates, seed,
                                     monitor="val_accuracy")
            report = evaluator.evaluate(model, test_ds)
            log(f"  {name}: test accuracy {report.metrics['accuracy']:.4f}, "
                f"macro-F1 {report.metrics['macro_f1']:.4f} (lr {lr:g})")
            results[name].append({**report.metrics, "seconds": time.time() - t,
                                  "learning_rate": lr})
            if name != "scratch":
                results[name][-1]["pretrain_seconds"] = pretrain_seconds
    if args.probe_only:
        return write_results(args, {}, start, lambda summary, a: probe_table(probes),
                             probes=probes)
    return write_results(args, results, start, table, probes=probes)


def probe_table(probes: dict) -> str:
    rows = [f"{'backbone':<14} {'linear probe':>13} {'kNN (k=20)':>11}"]
    for name, found in probes.items():
        rows.append(f"{name:<14} {found['linear_probe']['accuracy']:>13.4f} "
                    f"{found['knn']['accuracy']:>11.4f}")
    return "\n".join(rows)


def probe(args, backbone, fm) -> dict:
    """Linear-probe and kNN accuracy of the pretrained and of a randomly initialized
    backbone's frozen features: every labeled training image vs the test set."""
    evaluator = pl.Evaluator(metrics=["accuracy", "macro_f1"])
    train, test = (fm.train.images, fm.train.labels), (fm.test.images, fm.test.labels)
    if args.quick:
        train = (fm.train.images[:500], fm.train.labels[:500])
        test = (fm.test.images[:200], fm.test.labels[:200])
    keras.utils.set_random_seed(0)
    found = {}
    for name, net in (("pretrained", backbone), ("random init", make_backbone(args))):
        found[name] = {"linear_probe": evaluator.linear_probe(net, train, test).metrics,
                       "knn": evaluator.knn(net, train, test, k=20).metrics}
        log(f"  {name} backbone: linear probe accuracy "
            f"{found[name]['linear_probe']['accuracy']:.4f}, kNN (k=20) "
            f"{found[name]['knn']['accuracy']:.4f}")
    return found


def table(summary: dict, args) -> str:
    rows = [f"Fashion-MNIST, {args.study} pretraining, {args.labels_per_class} labels per "
            f"class, {args.seeds} seed(s): test set",
            f"{'model':<12} {'accuracy':>16} {'macro-F1':>16}"]
    for name, m in summary.items():
        cells = [f"{m[k]['mean']:.3f} ± {m[k]['std']:.3f}" for k in ("accuracy", "macro_f1")]
        rows.append(f"{name:<12} {cells[0]:>16} {cells[1]:>16}")
    for name in summary:
        if name != "scratch" and "scratch" in summary:
            gain = summary[name]["accuracy"]["mean"] - summary["scratch"]["accuracy"]["mean"]
            label = "" if name == "pretrained" else f" ({name})"
            rows.append(f"pretraining gain{label} (accuracy): {gain:+.3f}")
    return "\n".join(rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", choices=["masked", "supervised", *CONTRASTIVE], default="masked")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--pretrain-per-seed", action="store_true",
                   help="pretrain again for every seed (default: once)")
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--val-images", type=int, default=1000)
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--augment", type=int, default=0, help="1: random shifts and flips")
    p.add_argument("--pretrain-epochs", type=int, default=10)
    p.add_argument("--pretrain-batch", type=int, default=128)
    p.add_argument("--pretrain-lr", type=float, default=2e-3)
    p.add_argument("--mask-ratio", type=float, default=0.5)
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--target-decay", type=float, default=0.99)
    p.add_argument("--crop-min", type=float, default=0.2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--freeze-epochs", type=int, default=5)
    p.add_argument("--learning-rates", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3])
    p.add_argument("--frozen-learning-rates", type=float, nargs="+", default=None,
                   help="the frozen arm's grid (default: --learning-rates)")
    p.add_argument("--probe", action="store_true",
                   help="also score the pretrained (and a random) backbone's frozen features "
                        "by linear probe and kNN on all labeled training images")
    p.add_argument("--probe-only", action="store_true",
                   help="pretrain, score the frozen features (--probe) and stop")
    p.add_argument("--save-backbone", help="save the pretrained backbone here (.keras)")
    p.add_argument("--load-backbone",
                   help="fine-tune this saved pretrained backbone instead of pretraining")
    p.add_argument("--arms", nargs="+", default=["pretrained", "scratch"],
                   choices=["pretrained", "pretrained, frozen", "scratch"],
                   help="pretrained: FreezeThenUnfreeze; 'pretrained, frozen': a linear "
                        "head on the frozen features (FeatureExtraction)")
    p.add_argument("--out", default="runs/fashion_mnist_transfer.json")
    p.add_argument("--quick", action="store_true",
                   help="a tiny budget (1,024 source images) that checks the pipeline end "
                        "to end (for tests)")
    args = p.parse_args(argv)
    args.probe = args.probe or args.probe_only
    if args.quick:
        args.widths, args.pretrain_epochs, args.epochs = [8, 16], 1, 2
        args.val_images, args.learning_rates, args.labels_per_class = 100, [1e-3], 2
    return args


if __name__ == "__main__":
    run(parse_args())
