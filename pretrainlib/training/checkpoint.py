"""Checkpoints that survive a kill, and the guard that stops on a non-finite loss.

Keras's `BackupAndRestore` keeps one checkpoint, overwrites it in place (a kill
during the write loses it) and, saved mid-epoch, replays the epoch from its start.
`Checkpoint` writes each checkpoint into a fresh folder and renames it into place
(atomic on POSIX), keeps the last `keep`, and records where in the epoch it was, so
that `fit` on a Pretrainer or FineTuner resumes at the next batch, not the next epoch.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil

import keras
import numpy as np

from pretrainlib import keras_compat, validation
from pretrainlib.training.lora_saving import lora_weights

_FORMAT = 1
_WEIGHTS = "model.weights.h5"  # model and optimizer (slots and step counter)
# Checkpoints written before FineTuners saved their LoRA layers unmerged themselves
# (training/lora_saving.py) kept them in this file: still read.
_LORA = "lora.npz"
_SEEDS = "seeds.npz"  # random layers' seed states: Keras's weights files leave them out
_STATE = "state.json"


class Checkpoint(keras.callbacks.Callback):
    """Saves training state every `every_steps` batches and at each epoch end;
    `fit` on a Pretrainer or FineTuner resumes from the newest one.

    A checkpoint holds the weights, the optimizer (its slots and step counter, hence
    the learning-rate schedule's position and the freezing policy's stage), the
    seed states of random layers, the data's seed, and the epoch and batch reached.
    On resume, `fit` builds the data stream at the next batch (the pipelines of
    `pl.data` and arrays build each epoch from (seed, epoch), see `pl.epochs`), so
    under `keras.utils.set_random_seed` a killed and resumed run ends with the
    weights of the same run without any checkpoint. Each checkpoint is written to a
    temporary folder and renamed into place, so a kill during a write leaves the
    previous checkpoint whole.

    Args:
        directory: folder for this run's checkpoints (one sub-folder each).
        every_steps: also save every this many training steps; `None` saves at epoch
            ends only.
        keep: how many of the newest checkpoints to keep.
        resume: if False, existing checkpoints are deleted when `fit` starts.

    Examples:
        >>> import tempfile, numpy as np, tensorflow as tf, pretrainlib as pl
        >>> backbone = pl.backbones.ConvNet(input_shape=(8, 8, 1), widths=(4,))
        >>> ft = pl.FineTuner(backbone, pl.heads.Classifier(2))
        >>> ft.compile(learning_rate=1e-2)
        >>> data = tf.data.Dataset.from_tensor_slices(
        ...     (np.zeros((8, 8, 8, 1), "float32"), np.arange(8) % 2)).batch(4)
        >>> folder = tempfile.mkdtemp()
        >>> _ = ft.fit(data, epochs=2, verbose=0,
        ...            callbacks=[pl.training.Checkpoint(folder, every_steps=1, keep=2)])
        >>> [p.name for p in pl.training.Checkpoint(folder).checkpoints()]
        ['step-000003', 'step-000004']
    """

    def __init__(self, directory: str | os.PathLike, every_steps: int | None = None,
                 keep: int = 3, resume: bool = True):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise TypeError("`directory` must be a folder path (str or pathlib.Path). "
                            f"Received: directory={directory!r}")
        self.directory = pathlib.Path(directory)
        self.every_steps = (None if every_steps is None
                            else validation.positive_int("every_steps", every_steps))
        self.keep = validation.positive_int("keep", keep)
        self.resume = bool(resume)
        self._run: dict = {}
        self._offset = 0  # batches of the current epoch trained before this fit call
        self._saved_at = 0  # run batches done at the last save
        self._position = None  # where the data stands after n batches, if recorded

    # === Reading ===
    def checkpoints(self) -> list[pathlib.Path]:
        """Complete checkpoints, oldest first (partial writes are not listed)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("step-*")
                      if p.is_dir() and (p / _STATE).is_file())

    def latest(self) -> pathlib.Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def read_state(self, path: pathlib.Path) -> dict:
        return json.loads((path / _STATE).read_text())

    def restore(self, model: keras.Model, path: pathlib.Path) -> dict:
        """Loads the checkpoint at `path` into `model` (built, with its optimizer
        built) after checking it was written by a model of the same shape."""
        state = self.read_state(path)
        expected = fingerprint(model)
        if state.get("format") != _FORMAT or state.get("fingerprint") != expected:
            raise ValueError(
                f"The checkpoint {path} was written by a different model (its variables' "
                f"names and shapes differ from this {type(model).__name__}'s). Point "
                "`Checkpoint(directory=...)` at a new folder, or pass resume=False to "
                "start over.")
        model.load_weights(str(path / _WEIGHTS))
        with np.load(path / _SEEDS) as seeds:
            for i, variable in enumerate(seed_states(model)):
                variable.assign(seeds[f"state_{i}"])
        if (path / _LORA).exists():
            with np.load(path / _LORA) as saved:
                for i, variable in enumerate(lora_weights(model)):
                    variable.assign(saved[f"weight_{i}"])
        return state

    # === Writing ===
    def begin(self, run: dict, offset: int = 0, position=None) -> None:
        """Called by the training core before each Keras `fit` it runs: `run` holds
        `first_epoch`, `steps_per_epoch` and `schedule`; `offset` the batches of the
        first epoch already trained; `position(batches)`, for data resumed from a
        recorded position, where the data stands after that many of the run's
        batches."""
        self._run, self._offset, self._position = dict(run), offset, position
        self._saved_at = None
        if self._writes():
            for partial in self.directory.glob(".partial-*"):  # left by a killed write
                shutil.rmtree(partial)
            if not self.resume:
                for path in self.checkpoints():
                    shutil.rmtree(path)
        self.resume = True  # only the first fit of this callback starts over

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._done = self._offset  # batches of this epoch trained

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 this runs once per execution (`batch` is its
        # last batch), so save on crossing a multiple of `every_steps`, not on one.
        done = self._done = self._offset + batch + 1
        if self.every_steps is None:
            return
        total = self._global_batches(self._epoch, done)
        if self._saved_at is None:
            self._saved_at = self._global_batches(self._epoch, self._offset)
        if total // self.every_steps > self._saved_at // self.every_steps:
            self.save(self._epoch, done)
            self._saved_at = total

    def on_epoch_end(self, epoch, logs=None):
        # An epoch stopped early (`model.stop_training` set mid-epoch) is saved
        # where it stopped, so a resume trains the rest of it.
        done, self._offset = self._done, 0
        self.save(epoch, done)

    def _global_batches(self, epoch: int, batch: int) -> int:
        steps = self._run.get("steps_per_epoch", 0)
        return (epoch - self._run.get("first_epoch", 0)) * steps + batch

    def _writes(self) -> bool:
        """Whether this process writes: under MultiWorkerMirroredStrategy only the
        chief does (as Keras's BackupAndRestore); every worker reads the chief's
        checkpoints to resume, so `directory` must be shared."""
        strategy = getattr(self.model, "distribute_strategy", None)
        return bool(getattr(getattr(strategy, "extended", None), "should_checkpoint", True))

    def save(self, epoch: int, batch: int) -> pathlib.Path:
        """Writes a checkpoint atomically: into `.partial-*`, then renamed (by the
        chief only, under a multi-worker strategy)."""
        if batch >= self._run.get("steps_per_epoch", batch + 1):  # the epoch is done
            epoch, batch = epoch + 1, 0
        step = self._run.get("first_step", 0) + self._global_batches(epoch, batch)
        final = self.directory / f"step-{step:06d}"
        if final.exists() or not self._writes():
            return final
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".partial-{final.name}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        self.model.save_weights(str(partial / _WEIGHTS))
        np.savez(partial / _SEEDS, **{f"state_{i}": np.asarray(v)
                                      for i, v in enumerate(seed_states(self.model))})
        state = {"format": _FORMAT, "epoch": epoch, "batch": batch, "step": step,
                 **self._run, "fingerprint": fingerprint(self.model)}
        if self._position is not None:
            state["data_position"] = self._position(self._global_batches(epoch, batch))
        _write_synced(partial / _STATE, json.dumps(state, indent=1))
        _fsync(partial / _WEIGHTS)
        _fsync(partial / _SEEDS)
        os.replace(partial, final)
        _fsync(self.directory)
        for old in self.checkpoints()[:-self.keep]:
            shutil.rmtree(old)
        return final


def find(callbacks) -> Checkpoint | None:
    """The `Checkpoint` among `callbacks`, if any (at most one is allowed)."""
    found = [c for c in callbacks or [] if isinstance(c, Checkpoint)]
    if len(found) > 1:
        raise ValueError("`callbacks` holds several pl.training.Checkpoint callbacks; "
                         "pass one (each run needs its own folder).")
    return found[0] if found else None


def fingerprint(model: keras.Model) -> list:
    """Names and shapes of the model's variables, in order: what a checkpoint must
    match. (Not their paths: those carry layer names that Keras numbers per process.)"""
    return [[v.name, list(v.shape)] for v in model.weights]


def seed_states(model: keras.Model) -> list:
    """The state variables of every `keras.random.SeedGenerator` in `model` (dropout,
    random masking, ...), in layer order."""
    return [generator.state for layer in keras_compat.sublayers(model, include_self=True)
            for generator in keras_compat.seed_generators(layer)]


def _write_synced(path: pathlib.Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: pathlib.Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops `fit` with an error at the first batch whose loss is NaN or infinite.

    The training core adds it to every `fit` of a Pretrainer or FineTuner, before a
    `Checkpoint` callback, so a non-finite state is never saved: the error names the
    step and the last good checkpoint, which a later `fit` resumes from. Add it to
    a plain Keras model's callbacks yourself.

    Examples:
        >>> import keras, numpy as np, pretrainlib as pl
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> try:
        ...     model.fit(np.array([[np.nan, 1.0]]), np.zeros(1), verbose=0,
        ...               callbacks=[pl.training.NonFiniteLossGuard()])
        ... except FloatingPointError as error:
        ...     print(str(error).split(";")[0])
        The training loss became nan at step 1 (epoch 1, batch 1)
    """

    def __init__(self, checkpoint: Checkpoint | None = None, skip: bool = False,
                 max_skipped: int = 10):
        super().__init__()
        self.checkpoint = checkpoint
        self.skip = skip
        self.max_skipped = validation.positive_int("max_skipped", max_skipped)
        self._in_a_row = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._skipped = 0

    def on_epoch_end(self, epoch, logs=None):
        if self._skipped:
            print(f"NonFiniteLossGuard: epoch {epoch + 1} skipped {self._skipped} batch(es) "
                  "with a non-finite loss or gradient.")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if self.skip:
            if float(logs.get("skipped", 0.0)) == 0.0:
                self._in_a_row = 0
                return
            self._skipped += 1
            self._in_a_row += 1
            if self._in_a_row < self.max_skipped:
                return
            loss = float("nan")
        else:
            loss = logs.get("loss")
            if loss is None or math.isfinite(float(loss)):
                return
        step = int(self.model.optimizer.iterations.numpy())
        last = self.checkpoint.latest() if self.checkpoint is not None else None
        where = (f"The last good checkpoint, {last}, is intact: fix the cause and call "
                 "fit again to resume from it." if last is not None else
                 "No checkpoint was written; add pl.training.Checkpoint(folder, "
                 "every_steps=...) to `callbacks` to resume from the last good state.")
        if self.skip:
            where = f"{self.max_skipped} batches in a row were skipped. " + where
        raise FloatingPointError(
            f"The training loss became {float(loss)} at step {step} (epoch "
            f"{self._epoch + 1}, batch {batch + 1}); training stopped. {where} Common "
            "causes: a learning rate too high for this model, inputs with NaN or "
            "infinite values, or labels out of range.")
