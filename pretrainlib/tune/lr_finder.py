"""The learning-rate range test (Smith, 2017; fastai's `lr_find`) for any compiled
model of this library.

The rate grows exponentially from `min_lr` to `max_lr` over `steps` batches while the
loss is recorded; the test stops early once the smoothed loss exceeds
`stop_factor` times its best. It runs on a copy of the model (saved and loaded as
`keras.saving` does), so the model you pass, its weights and its optimizer are
untouched: no reset step to forget.

The suggestion is fastai's "valley" rule: the longest stretch over which the
smoothed loss keeps falling, taken a little past its middle (between the first and
second third). It picks a rate where the loss falls steadily, below the cliff where
it diverges and above the flat start where nothing is learned; fastai made it its
default after comparing it with "minimum / 10" and "steepest slope" on many tasks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.epochs import source_of
from pretrainlib.training import defaults
from pretrainlib.training.optimizers import inner_optimizer

__all__ = ["LearningRateFinding", "find_learning_rate", "valley"]


@dataclasses.dataclass
class LearningRateFinding:
    """What `find_learning_rate` measured: the rates tried, the smoothed and raw
    batch losses at each, the suggested rate and the seconds the test took.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> rates = np.geomspace(1e-5, 1, 6)
        >>> found = pl.tune.LearningRateFinding(rates, np.array([2., 1.9, 1.5, 1., 1.2, 9.]),
        ...                                     np.array([2., 1.9, 1.5, 1., 1.2, 9.]),
        ...                                     suggestion=1e-3, seconds=1.0)
        >>> print(found)
        suggested learning rate 0.001 (valley rule; 6 rates from 1e-05 to 1, 1.0 s)
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggestion: float
    seconds: float

    def __str__(self) -> str:
        return (f"suggested learning rate {self.suggestion:.3g} (valley rule; "
                f"{len(self.learning_rates)} rates from {self.learning_rates[0]:.3g} to "
                f"{self.learning_rates[-1]:.3g}, {self.seconds:.1f} s)")

    def plot(self, path: str | os.PathLike | None = None, ax=None, title: str | None = None,
             chosen: float | None = None):
        """Loss against learning rate (log scale) with the suggestion marked; saved to
        `path` if given. Returns the matplotlib axes (needs `matplotlib`).

        Args:
            path: where to save the figure (PNG), if given.
            ax: matplotlib axes to draw on (a new figure by default).
            title: the figure's title (default: "Learning-rate range test").
            chosen: a rate to mark with a vertical line, e.g. the one you trained at.
        """
        try:
            import matplotlib
            if path is not None and ax is None:
                matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("LearningRateFinding.plot needs matplotlib: "
                              "`pip install matplotlib` (or `pip install \".[plot]\"` in a "
                              "clone of pretrainlib).") from None
        figure = None
        if ax is None:
            figure, ax = plt.subplots(figsize=(6, 4))
        low, high = np.nanmin(self.losses), np.nanmax(self.losses[: max(1, len(self.losses) // 2)])
        bottom, top = low - 0.1 * abs(low), max(high, low) + 0.5 * abs(high - low) + 1e-9
        # Clipped to the frame: past the cliff the loss explodes, and a line that
        # leaves the plot hides where it turned.
        clip = lambda values: np.clip(np.asarray(values, float), bottom, top)  # noqa: E731
        if not np.array_equal(self.raw_losses, self.losses):  # (equal when read back smoothed)
            ax.plot(self.learning_rates, clip(self.raw_losses), color="0.8", label="batch loss")
        ax.plot(self.learning_rates, clip(self.losses), label="smoothed (clipped to the frame)")
        index = int(np.argmin(np.abs(np.log(self.learning_rates / self.suggestion))))
        ax.plot(self.suggestion, clip([self.losses[index]])[0], "o", color="C3",
                label=f"suggestion {self.suggestion:.2g}")
        if chosen is not None:
            ax.axvline(chosen, color="C2", linestyle="--", label=f"chosen {chosen:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_ylim(bottom, top)
        ax.set_title(title or "Learning-rate range test")
        ax.legend()
        if figure is not None and path is not None:
            figure.tight_layout()
            figure.savefig(path, dpi=120)
            plt.close(figure)
        return ax


def valley(learning_rates, losses) -> float:
    """fastai's "valley" suggestion: the longest run over which `losses` keep falling
    (a longest decreasing subsequence), read at about 1/2 of the way between its
    first and second third.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> rates = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
        >>> pl.tune.valley(rates, [3.0, 2.9, 2.5, 1.8, 1.2, 1.5, 8.0])  # falls over 1e-6..1e-2
        1e-05
    """
    losses = np.asarray(losses, float)
    n = len(losses)
    if n < 2:
        raise ValueError(f"The range test recorded {n} loss(es); it needs at least 2. "
                         "Give more `steps` or more data.")
    longest = np.ones(n, int)  # longest decreasing subsequence ending at each point
    for i in range(1, n):
        earlier = losses[:i] > losses[i]
        if earlier.any():
            longest[i] = longest[:i][earlier].max() + 1
    end = int(np.argmax(longest))
    start = end - int(longest[end]) + 1
    section = (end - start) / 3
    index = start + int(section) + int(section / 2)
    return float(np.asarray(learning_rates)[index])


@keras.saving.register_keras_serializable(package="pretrainlib")
class ExponentialRange(keras.optimizers.schedules.LearningRateSchedule):
    """`min_lr * (max_lr / min_lr) ** (step / (steps - 1))`: the range test's rates.

    Examples:
        >>> from pretrainlib.tune.lr_finder import ExponentialRange
        >>> schedule = ExponentialRange(1e-4, 1.0, steps=5)
        >>> [round(float(schedule(step)), 6) for step in range(5)]
        [0.0001, 0.001, 0.01, 0.1, 1.0]
    """

    def __init__(self, min_lr: float, max_lr: float, steps: int):
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), int(steps)

    def __call__(self, step):
        fraction = keras.ops.cast(step, "float32") / max(1, self.steps - 1)
        return self.min_lr * (self.max_lr / self.min_lr) ** keras.ops.minimum(fraction, 1.0)

    def rate(self, step: int) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** min(step / max(1, self.steps - 1), 1)

    def get_config(self):
        return {"min_lr": self.min_lr, "max_lr": self.max_lr, "steps": self.steps}


class _Recorder(keras.callbacks.Callback):
    """Each batch's loss (recovered from Keras's running mean), smoothed as fastai
    does; stops the run when it diverges."""

    def __init__(self, schedule: ExponentialRange, smoothing: float, stop_factor: float):
        super().__init__()
        self.schedule, self.smoothing, self.stop_factor = schedule, smoothing, stop_factor
        self.rates, self.raw, self.smoothed = [], [], []
        self._mean, self._average, self._best = 0.0, 0.0, math.inf

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {})["loss"])
        count = len(self.raw) + 1
        loss = count * mean - (count - 1) * self._mean  # Keras logs the epoch's mean
        self._mean = mean
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** count)
        self.rates.append(self.schedule.rate(len(self.raw)))
        self.raw.append(loss)
        self.smoothed.append(smoothed)
        self._best = min(self._best, smoothed)
        if not math.isfinite(smoothed) or (count > 1 and smoothed > self.stop_factor * self._best):
            self.model.stop_training = True
        elif count >= self.schedule.steps:
            self.model.stop_training = True


def find_learning_rate(model: keras.Model, x=None, y=None, *, batch_size: int | None = None,
                       min_lr: float = 1e-7, max_lr: float = 10.0, steps: int = 100,
                       stop_factor: float = 4.0, smoothing: float = 0.98,
                       stage: int | None = None) -> LearningRateFinding:
    """Runs the learning-rate range test on a copy of `model` and suggests a peak
    rate for `compile(learning_rate=...)`.

    `model` is a compiled `pl.FineTuner` or `pl.Pretrainer` (or another model of this
    library); the copy trains with `model`'s optimizer type and settings, its loss
    and its freezing policy at `stage`, the rate rising from `min_lr` to `max_lr`
    over `steps` batches of `x` (read again from the start if it runs out). `model`
    itself is not changed. The run takes about `steps` training steps.

    The default stage is the policy's last, where everything it trains trains
    (after `FreezeThenUnfreeze`'s head-only epochs, the whole network): the
    rate a fine-tuning run needs is the one the backbone tolerates. A range test of
    the head alone (`stage=0` there, which runs on cached features in seconds)
    suggests rates several times too high for the whole run; on the bundled WordNet
    recipe it picked the grid's worst rates where the last stage picked its best
    (see the results page).

    Args:
        model: a compiled model of this library.
        x: the training data, as `fit` takes it (a dataset, arrays, raw inputs).
        y: labels, when `x` is arrays or raw inputs.
        batch_size: the batch size for arrays or raw inputs.
        min_lr: the lowest rate (> 0).
        max_lr: the highest rate (> min_lr).
        steps: batches over the range (at least 10).
        stop_factor: stop once the smoothed loss is this many times its best (> 1).
        smoothing: the exponential moving average's weight on the past, in [0, 1).
        stage: the policy stage to test a FineTuner in (default: the last).

    Returns:
        A `LearningRateFinding`: `.suggestion`, `.learning_rates`, `.losses`,
        `.plot(path)`.

    Examples:
        >>> import keras, pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat", "the dog barks"] * 20, [0, 1, 0] * 20
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2),
        ...                   preprocessor=pl.text.TextPreprocessor(tok, sequence_length=8))
        >>> ft.compile()
        >>> found = pl.tune.find_learning_rate(ft, texts, labels, batch_size=8, steps=30)
        >>> 1e-7 <= found.suggestion <= 10, len(found.learning_rates) <= 30
        (True, True)
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(model, "_compile_arguments"):
        raise ValueError("`model` must be a compiled model of this library (a FineTuner or "
                         "Pretrainer): call model.compile(...) first.")
    validation.positive_float("min_lr", min_lr)
    if isinstance(max_lr, bool) or not isinstance(max_lr, (int, float)) or not max_lr > min_lr:
        raise ValueError(f"`max_lr` must be a number above min_lr={min_lr}. "
                         f"Received: max_lr={max_lr!r}")
    if validation.positive_int("steps", steps) < 10:
        raise ValueError(f"`steps` must be at least 10. Received: steps={steps}")
    if isinstance(stop_factor, bool) or not isinstance(stop_factor, (int, float)) \
            or not stop_factor > 1:
        raise ValueError(f"`stop_factor` must be a number above 1. "
                         f"Received: stop_factor={stop_factor!r}")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) \
            or not 0 <= smoothing < 1:
        raise ValueError(f"`smoothing` must be a number in [0, 1). "
                         f"Received: smoothing={smoothing!r}")
    if stage is not None:
        policy = getattr(model, "policy", None)
        if policy is None or policy.unit != "epoch":
            raise ValueError("`stage` is for a FineTuner whose policy counts epochs; "
                             f"this model has policy={policy!r}.")
        validation.non_negative_int("stage", stage)
        count = policy.num_stages(list(model.layer_groups))
        if stage >= count:
            raise ValueError(f"`stage` must be below the policy's {count} stages. "
                             f"Received: stage={stage}")
    if x is None:
        raise ValueError("`x` is required: the training data, as `fit` takes it.")

    start = time.perf_counter()
    schedule = ExponentialRange(min_lr, max_lr, steps)
    copy = copy_of(model)
    settings = dict(defaults.recall(model._compile_arguments))
    inner = inner_optimizer(optimizer)
    config = {**inner.get_config(), "learning_rate": schedule}
    for key in ("learning_rate", "weight_decay", "warmup_ratio", "clipnorm"):
        settings.pop(key, None)
    settings.update(optimizer=type(inner).from_config(config), steps_per_execution=1)
    copy.compile(**settings)
    recorder = _Recorder(schedule, float(smoothing), float(stop_factor))
    # The library's pipelines flow on into their next pass; any other dataset repeats.
    plain = isinstance(x, tf.data.Dataset) and source_of(x) is None
    data = x.repeat() if plain else x
    epoch = _first_epoch_of(copy, stage)
    copy.fit(data, y, batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
             steps_per_epoch=steps, callbacks=[recorder], verbose=0)
    rates, raw, smoothed = (np.array(v, float) for v in (recorder.rates, recorder.raw,
                                                         recorder.smoothed))
    usable = np.isfinite(smoothed)
    suggestion = valley(rates[usable], smoothed[usable])
    return LearningRateFinding(rates, smoothed, raw, suggestion, time.perf_counter() - start)


def copy_of(model: keras.Model) -> keras.Model:
    """`model` saved and loaded: its own weights and variables, the original untouched."""
    folder = tempfile.mkdtemp(prefix="lr-finder-")
    try:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        with warnings.catch_warnings():  # the copy is compiled afresh: its state is moot
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _first_epoch_of(model, stage: int | None) -> int:
    """The first epoch from `model`'s next at which its policy is in `stage` (by
    default the policy's last stage; the next epoch for a model without an epoch
    policy)."""
    epoch = int(getattr(model, "epochs_trained", 0))
    policy = getattr(model, "policy", None)
    if policy is None or policy.unit != "epoch":
        return epoch
    if stage is None:
        stage = policy.num_stages(list(model.layer_groups)) - 1
    for candidate in range(epoch, epoch + 10_000):
        if policy.stage_index(candidate, list(model.layer_groups)) == stage:
            return candidate
    raise ValueError(f"`stage={stage}` is never reached after epoch {epoch} by "
                     f"{policy!r}; pick a stage it reaches.")
