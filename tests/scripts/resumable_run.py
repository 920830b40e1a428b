"""A small deterministic training run that checkpoints, for the resume tests.

    python resumable_run.py FOLDER OUT.npz [--die-at STEP] [--die-in-save]
        [--model finetuner|pretrainer]

Fine-tunes a tiny ConvNet with dropout under FreezeThenUnfreeze on real Fashion-MNIST
images (shuffled, seeded), or pretrains it as a masked autoencoder, for 3 epochs of 6
batches with a checkpoint every 4 steps in FOLDER. `--die-at STEP` SIGKILLs the
process after that global step (as a preemption would); `--die-in-save` SIGKILLs it
halfway through writing the second checkpoint. A finished run writes its final
weights to OUT.npz.
"""

import argparse
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
        if int(self.model.optimizer.iterations) == self.step:
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("out")
    parser.add_argument("--die-at", type=int)
    parser.add_argument("--die-in-save", action="store_true")
    parser.add_argument("--model", default="finetuner", choices=["finetuner", "pretrainer"])
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    fm = pl.datasets.fashion_mnist()
    part = fm.train.sample(96, seed=0)
    backbone = pl.backbones.ConvNet(widths=(8, 16), blocks_per_stage=1)
    if args.model == "finetuner":
        model = pl.FineTuner(backbone, pl.heads.Classifier(10, dropout=0.3),
                             policy=pl.freezing.FreezeThenUnfreeze(1))
        data = pl.data.image_dataset(part.images, part.labels, batch_size=16, seed=1)
    else:
        model = pl.Pretrainer(backbone, pl.objectives.Autoencoder(noise="mask", patch_size=7))
        data = pl.data.image_dataset(part.images, batch_size=16, seed=1)
    model.compile(learning_rate=3e-3)
    callbacks = [pl.training.Checkpoint(args.folder, every_steps=4, keep=2)]
    if args.die_at is not None:
        callbacks.append(DieAt(args.die_at))
    if args.die_in_save:
        die_halfway_through_the_second_save()
    history = model.fit(data, epochs=3, callbacks=callbacks, verbose=0)
    np.savez(args.out, *[np.asarray(w) for w in model.weights],
             epochs=np.asarray(history.epoch), loss=np.asarray(history.history["loss"]))


if __name__ == "__main__":
    main()
