"""A small seeded training run, with or without checkpoints, for the resume tests.

    python resumable_run.py OUT.npz [--model images|text|pretrainer|files|semi|byol]
        [--checkpoint FOLDER] [--every N] [--die-at STEP] [--die-in-save]
        [--mirrored] [--tokenizer PATH]

`images` fine-tunes a tiny ConvNet (head dropout, augmentation) under
FreezeThenUnfreeze(1) on shuffled real Fashion-MNIST; `text` a one-layer
TextEncoder (dropout 0.1) under FreezeThenUnfreeze(1) on shuffled WordNet glosses;
`pretrainer` pretrains a TextEncoder with masked LM on packed glosses; `files`
does the same on glosses packed as they stream from four JSON Lines files (written
next to OUT), epochs of 6 batches cut from the stream. Each runs 3 epochs of 6
batches from `keras.utils.set_random_seed(0)`. `--checkpoint` adds a
`pl.training.Checkpoint` every `--every` steps; `--die-at STEP` SIGKILLs the
process after that global step (as a preemption would); `--die-in-save` SIGKILLs
it halfway through writing the second checkpoint; `--mirrored` trains under
MirroredStrategy on two logical CPUs. `--tokenizer` names a saved WordPiece
vocabulary (one for every process). A finished run writes its final weights to
OUT.npz. `semi` is `images` with an unlabeled pool of 80 images and
`pl.semi.Consistency` (augmented views drawn per step). `byol` pretrains the tiny
ConvNet with `pl.objectives.BYOL` (two views per image, a moving-average target
network updated every step) on 96 images.
"""

import argparse
import json
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import pretrainlib as pl  # noqa: E402
from pretrainlib.training import checkpoint as checkpointing  # noqa: E402


class DieAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def die_halfway_through_the_second_save():
    original, calls = checkpointing.Checkpoint.save, []

    def save(self, epoch, batch):
        calls.append(1)
        if len(calls) == 2:  # weights written into the partial folder, then killed
            real = self.model.save_weights

            def save_weights_then_die(path):
                real(path)
                os.kill(os.getpid(), signal.SIGKILL)
            self.model.save_weights = save_weights_then_die
        return original(self, epoch, batch)
    checkpointing.Checkpoint.save = save


def build(kind, tokenizer, folder):
    if kind in ("images", "semi"):
        part = pl.datasets.fashion_mnist().train.sample(96, seed=0)
        method = pl.semi.Consistency(threshold=0.3) if kind == "semi" else None
        model = pl.FineTuner(pl.backbones.ConvNet(widths=(8, 16), blocks_per_stage=1),
                             pl.heads.Classifier(10, dropout=0.3),
                             policy=pl.freezing.FreezeThenUnfreeze(1), semi_supervised=method)
        augment = [keras.layers.RandomTranslation(0.1, 0.1), keras.layers.RandomFlip()]
        data = pl.data.image_dataset(part.images, part.labels, batch_size=16, seed=1,
                                     augment=augment)
        if kind == "semi":  # a pool of 80: its epochs end apart from the labeled ones
            return model, {"x": data, "unlabeled": pl.datasets.fashion_mnist().train.images[-80:]}
        return model, data
    if kind == "byol":
        images = pl.datasets.fashion_mnist().train.sample(96, seed=0).images
        model = pl.Pretrainer(pl.backbones.ConvNet(widths=(8, 16), blocks_per_stage=1),
                              pl.objectives.BYOL(target_decay=0.9, projection_dim=16), seed=2)
        return model, pl.data.image_dataset(images, batch_size=16, seed=1)
    glosses = pl.datasets.wordnet_supersenses().train.sample(96, seed=0)
    encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1, hidden_dim=32,
                                       num_heads=2, intermediate_dim=64,
                                       max_sequence_length=24, dropout=0.1)
    if kind == "text":
        model = pl.FineTuner(encoder, pl.heads.Classifier(26, dropout=0.1),
                             policy=pl.freezing.FreezeThenUnfreeze(1))
        data = pl.data.text_dataset(glosses.texts, tokenizer, glosses.labels, batch_size=16,
                                    sequence_length=24, seed=1)
        return model, data
    model = pl.Pretrainer(encoder, pl.objectives.MaskedLM(tokenizer=tokenizer), seed=2)
    if kind == "files":
        texts = pl.datasets.wordnet_supersenses().unlabeled[:240]
        os.makedirs(folder, exist_ok=True)
        for i in range(4):
            with open(os.path.join(folder, f"part-{i}.jsonl"), "w") as f:
                f.writelines(json.dumps({"text": t}) + "\n" for t in texts[i::4])
        data = pl.data.text_dataset(os.path.join(folder, "part-*.jsonl"), tokenizer,
                                    batch_size=8, sequence_length=24, pack=True,
                                    reset_attention=True, seed=1, buffer_size=40)
        return model, data
    data = pl.data.text_dataset(glosses.texts, tokenizer, batch_size=8, sequence_length=24,
                                pack=True, reset_attention=True, seed=1)
    return model, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--model", default="images",
                        choices=["images", "text", "pretrainer", "files", "semi", "byol"])
    parser.add_argument("--checkpoint")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--die-in-save", action="store_true")
    parser.add_argument("--mirrored", action="store_true")
    parser.add_argument("--tokenizer")
    args = parser.parse_args()
    strategy = tf.distribute.get_strategy()
    if args.mirrored:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    tokenizer = pl.text.WordPieceTokenizer.load(args.tokenizer) if args.tokenizer else None
    with strategy.scope():
        corpus = os.path.join(os.path.dirname(os.path.abspath(args.out)), "corpus")
        model, data = build(args.model, tokenizer, corpus)
        model.compile(learning_rate=3e-3)
    initial = {f"init_{i}": np.asarray(w) for i, w in enumerate(model.weights)}
    callbacks = []
    if args.checkpoint:
        callbacks.append(pl.training.Checkpoint(args.checkpoint, every_steps=args.every,
                                                keep=2))
    if args.die_at is not None:
        callbacks.append(DieAt(args.die_at))
    if args.die_in_save:
        die_halfway_through_the_second_save()
    steps = 6 if args.model == "files" else None  # epochs cut from the stream
    arguments = data if isinstance(data, dict) else {"x": data}  # fit's arguments
    history = model.fit(**arguments, epochs=3, callbacks=callbacks, verbose=0,
                        steps_per_epoch=steps)
    np.savez(args.out, *[np.asarray(w) for w in model.weights], **initial,
             epochs=np.asarray(history.epoch), loss=np.asarray(history.history["loss"]))


if __name__ == "__main__":
    main()
