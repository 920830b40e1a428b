"""Learning-rate schedules owned by the training core."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="pretrainlib")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak` over `warmup_ratio` of the run, then linear decay to 0.

    The run length is set by `fit` (epochs x steps per epoch) through `start(...)`,
    so users never compute it; every `fit` call starts a new cycle at the
    optimizer's current step, as fastai's `fit_one_cycle` does.

    Examples:
        >>> import pretrainlib as pl
        >>> schedule = pl.training.WarmupLinearDecay(peak=1e-3, warmup_ratio=0.1)
        >>> schedule.start(first_step=0, total_steps=100)
        >>> [round(float(schedule(s)), 6) for s in (0, 10, 55, 100)]
        [0.0001, 0.001, 0.0005, 0.0]
    """

    def __init__(self, peak: float, warmup_ratio: float = 0.1, total_steps: int = 1,
                 first_step: int = 0):
        self.peak = float(peak)
        self.warmup_ratio = float(warmup_ratio)
        # The run's bounds live in a variable, not in constants of the traced train
        # step: a new `fit` call changes them without retracing (which cost seconds
        # per call, the bulk of FineTuner.fit's overhead over a plain Keras fit).
        self._run = tf.Variable([0.0, 1.0], trainable=False, name="warmup_linear_decay_run")
        self.start(first_step, total_steps)

    def start(self, first_step: int, total_steps: int) -> None:
        self.first_step, self.total_steps = int(first_step), max(1, int(total_steps))
        self._run.assign([float(self.first_step), float(self.total_steps)])

    def __call__(self, step):
        first, total = self._run[0], self._run[1]
        step = ops.cast(step, "float32") - first
        warmup = ops.maximum(1.0, self.warmup_ratio * total)
        rising = (step + 1.0) / warmup
        falling = (total - step) / ops.maximum(1.0, total - warmup)
        return self.peak * ops.clip(ops.minimum(rising, falling), 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_ratio": self.warmup_ratio,
                "total_steps": self.total_steps, "first_step": self.first_step}
