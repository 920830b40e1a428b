"""Magnitude pruning native to Keras 3: masks held through training, then stripped.

TensorFlow Model Optimization's pruning wraps tf-keras layers and does not run on
Keras 3, so this is our own, built on what Keras 3 already does: each pruned
weight gets its mask as the variable's `constraint`, which every Keras optimizer
applies right after its update, inside the compiled step (so masks hold under any
strategy, `steps_per_execution` and freezing policy, and the layers, their configs
and `.keras` files stay Keras's own). Pruned weights are exact zeros; a saved model
holds them as such, and `prune` on a reloaded model finds the same masks again.
"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np

from pretrainlib import validation
from pretrainlib.compress.selection import candidate_layers, matches

__all__ = ["GradualSchedule", "Pruning", "prune", "sparsity_of", "strip_pruning"]

_PRUNABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv1D,
             keras.layers.Conv2D, keras.layers.Conv3D)
SCOPES = ("global", "layer")


class GradualSchedule:
    """Sparsity that rises from `initial_sparsity` to the target during training, as
    Zhu & Gupta (2017) prune: `s(t) = s_f + (s_i - s_f) * (1 - p)^power`, with `p` the
    fraction of `[begin_step, end_step]` done, updated every `frequency` steps.

    Args:
        begin_step: optimizer step at which pruning starts.
        end_step: step at which the target is reached; default: three quarters
            into the first `fit` the pruning runs in (read from its epochs and
            steps), leaving the last quarter to recover.
        frequency: steps between mask updates.
        initial_sparsity: sparsity at `begin_step`.
        power: how fast it rises early (3: most pruning early, when weights are
            still plastic).

    Examples:
        >>> import pretrainlib as pl
        >>> schedule = pl.compress.GradualSchedule(begin_step=0, end_step=100)
        >>> [round(schedule.sparsity(step, 0.8), 3) for step in (0, 50, 100, 200)]
        [0.0, 0.7, 0.8, 0.8]
    """

    def __init__(self, begin_step: int = 0, end_step: int | None = None,
                 frequency: int = 10, initial_sparsity: float = 0.0, power: float = 3.0):
        self.begin_step = validation.non_negative_int("begin_step", begin_step)
        self.end_step = None if end_step is None else validation.positive_int("end_step",
                                                                              end_step)
        if self.end_step is not None and self.end_step <= self.begin_step:
            raise ValueError(f"`end_step` ({end_step}) must be after `begin_step` "
                             f"({begin_step}).")
        self.frequency = validation.positive_int("frequency", frequency)
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        if not power > 0:
            raise ValueError(f"`power` must be > 0. Received: power={power}")
        self.power = float(power)

    def sparsity(self, step: int, target: float, end_step: int | None = None) -> float:
        """The sparsity at optimizer step `step` for a `target` sparsity."""
        end = end_step if end_step is not None else self.end_step
        if end is None:
            raise ValueError("`end_step` is not known yet: give GradualSchedule(end_step=...) "
                             "or let `fit` set it.")
        if step <= self.begin_step:
            return self.initial_sparsity
        done = min(1.0, (step - self.begin_step) / max(end - self.begin_step, 1))
        return target + (self.initial_sparsity - target) * (1.0 - done) ** self.power

    def __repr__(self):
        return (f"GradualSchedule(begin_step={self.begin_step}, end_step={self.end_step}, "
                f"frequency={self.frequency}, initial_sparsity={self.initial_sparsity})")


class _Mask:
    """A variable's constraint: multiplies it by its mask after each update."""

    def __init__(self, mask):
        self.mask = mask

    def __call__(self, weight):
        return weight * keras.ops.cast(self.mask, weight.dtype)


class Pruning(keras.callbacks.Callback):
    """Magnitude-pruning masks on a model's weights; a Keras callback that keeps a
    gradual schedule going during `fit`. Build it with `pl.compress.prune`.

    The masks are held by the weights' constraints whether or not the callback is
    passed to `fit`; pass it to `fit` when `schedule` is gradual (it raises the
    sparsity as training goes), and it composes with any freezing policy.

    Examples:
        >>> import keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((16,))
        >>> model = keras.Model(inputs, keras.layers.Dense(8)(inputs))
        >>> pruning = pl.compress.prune(model, sparsity=0.75)
        >>> float(np.mean(model.layers[-1].kernel.numpy() == 0))
        0.75
        >>> model.compile("sgd", "mse")
        >>> _ = model.fit(np.ones((8, 16)), np.ones((8, 8)), verbose=0)
        >>> float(np.mean(model.layers[-1].kernel.numpy() == 0))  # held through training
        0.75
    """

    def __init__(self, model: keras.Model, weights: list, sparsity: float, scope: str,
                 schedule: GradualSchedule | None):
        super().__init__()
        self.target = sparsity
        self.scope = scope
        self.schedule = schedule
        self.pruned = weights  # the Keras variables
        self._end_step = schedule.end_step if schedule is not None else None
        strategy = getattr(model, "distribute_strategy", None)
        with (strategy.scope() if strategy is not None else contextlib.nullcontext()):
            self.masks = [keras.Variable(np.ones(w.shape, "float32"), trainable=False,
                                         name=f"{w.name}_mask") for w in weights]
        for weight, mask in zip(weights, self.masks):
            weight.constraint = _Mask(mask)
        self._model_pruned = model
        model._pruning = self  # for summary(); not saved (the zeros are the masks)
        self.current = 0.0
        self.update(schedule.initial_sparsity if schedule is not None else sparsity)

    # === Masks ===
    def update(self, sparsity: float) -> None:
        """Recomputes the masks so that `sparsity` of the pruned weights are zero (the
        smallest magnitudes: globally or per layer), and zeroes them."""
        values = [np.abs(np.asarray(w.numpy(), "float32")) for w in self.pruned]
        if self.scope == "global":
            flat = np.concatenate([v.ravel() for v in values])
            keep = _keep(flat, sparsity)
            masks, start = [], 0
            for v in values:
                masks.append(keep[start:start + v.size].reshape(v.shape))
                start += v.size
        else:
            masks = [_keep(v.ravel(), sparsity).reshape(v.shape) for v in values]
        for weight, mask, new in zip(self.pruned, self.masks, masks):
            mask.assign(new.astype("float32"))
            weight.assign(weight.numpy() * new.astype(weight.dtype))
        self.current = float(sparsity)

    def sparsity(self) -> float:
        """The fraction of the pruned weights that are zero now."""
        zeros = sum(int(np.sum(w.numpy() == 0)) for w in self.pruned)
        return zeros / max(sum(math.prod(w.shape) for w in self.pruned), 1)

    def describe(self) -> str:
        count = sum(math.prod(w.shape) for w in self.pruned)
        target = (f", rising to {100 * self.target:.1f}%" if self.current < self.target
                  else "")
        return (f"{100 * self.current:.1f}% of {count:,} weights in {len(self.pruned)} "
                f"kernels are zero ({self.scope} magnitude{target})")

    # === Callback ===
    def on_train_begin(self, logs=None):
        if self.schedule is not None and self._end_step is None:
            steps = (self.params or {}).get("steps") or 0
            epochs = (self.params or {}).get("epochs") or 0
            if not steps:
                raise ValueError(
                    "The gradual schedule needs `end_step`: the dataset's length is "
                    "unknown, so pass GradualSchedule(end_step=...).")
            done = int(self.model.optimizer.iterations.numpy())
            # Pruning over the first three quarters of the run; the rest recovers.
            self._end_step = max(done + int(0.75 * steps * epochs), self.schedule.begin_step + 1)

    def on_train_batch_begin(self, batch, logs=None):
        if self.schedule is None:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.schedule.begin_step and (
                (step - self.schedule.begin_step) % self.schedule.frequency == 0
                or step >= self._end_step):  # the target, at the end of the schedule
            sparsity = self.schedule.sparsity(step, self.target, self._end_step)
            if sparsity > self.current + 1e-9:
                self.update(sparsity)

    def strip(self) -> None:
        """Applies the masks a last time and removes them: the weights keep their
        exact zeros, and later training may change them again."""
        for weight, mask in zip(self.pruned, self.masks):
            weight.assign(weight.numpy() * mask.numpy().astype(weight.dtype))
            weight.constraint = None
        if getattr(self._model_pruned, "_pruning", None) is self:
            self._model_pruned._pruning = None


def prune(model: keras.Model, sparsity: float = 0.5, scope: str = "global",
          schedule: GradualSchedule | None = None, layers=None,
          include_embeddings: bool = False) -> Pruning:
    """Magnitude-prunes the kernels of `model`'s Dense, EinsumDense and Conv layers:
    the smallest weights become exact zeros and stay zero through training.

    One-shot (default): `sparsity` now. Gradual: `schedule=pl.compress.GradualSchedule()`
    starts at its `initial_sparsity` and rises to `sparsity` during the next `fit`
    that gets the returned callback (`ft.fit(..., callbacks=[pruning])`), with any
    freezing policy. `pl.compress.strip_pruning(model)` before export (the zeros
    stay; the masks go).

    Args:
        model: a built model (a FineTuner, a backbone, ...); a preprocessor's layers
            are left alone.
        sparsity: the fraction of the pruned weights set to zero, in [0, 1).
        scope: `"global"`: one magnitude threshold over all pruned weights (layers
            with small weights lose more); `"layer"`: `sparsity` in every layer.
        schedule: None (one-shot) or a `GradualSchedule`.
        layers: which layers: a regex on layer names, a list of them, or a callable
            `layer -> bool`; default every prunable layer.
        include_embeddings: also prune `Embedding` tables (off: a zeroed token
            vector removes that token).

    Returns:
        The `Pruning` (a Keras callback holding the masks).

    Examples:
        >>> import keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((16,))
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(16)(inputs)))
        >>> pruning = pl.compress.prune(model, sparsity=0.5, scope="layer")
        >>> [float(np.mean(layer.kernel.numpy() == 0)) for layer in model.layers[1:]]
        [0.5, 0.5]
        >>> pl.compress.strip_pruning(model) is model
        True
    """
    validation.instance_of("model", model, keras.Model, "a built keras.Model")
    sparsity = _check_sparsity("sparsity", sparsity)
    validation.one_of("scope", scope, SCOPES)
    validation.instance_of("schedule", schedule, (GradualSchedule, type(None)),
                           "a pl.compress.GradualSchedule, or None for one-shot")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: call it on a batch first.")
    if getattr(model, "_pruning", None) is not None:
        raise ValueError("`model` is already being pruned: call "
                         "pl.compress.strip_pruning(model) first.")
    weights = _prunable(model, layers, include_embeddings)
    if not weights:
        raise ValueError("No layer to prune: `layers` matched no Dense, EinsumDense or Conv "
                         "layer with a float kernel.")
    return Pruning(model, weights, sparsity, scope, schedule)


def strip_pruning(model: keras.Model) -> keras.Model:
    """Removes `prune`'s masks from `model`, keeping the zeros; returns the model."""
    pruning = getattr(model, "_pruning", None)
    if pruning is None:
        raise ValueError("`model` has no pruning to strip (pl.compress.prune it first).")
    pruning.strip()
    return model


def sparsity_of(model: keras.Model, include_embeddings: bool = False) -> float:
    """The fraction of exact zeros among the prunable kernels of `model`."""
    weights = _prunable(model, None, include_embeddings, check=False)
    zeros = sum(int(np.sum(w.numpy() == 0)) for w in weights)
    return zeros / max(sum(math.prod(w.shape) for w in weights), 1)


def _prunable(model, layers, include_embeddings, check=True) -> list:
    kinds = _PRUNABLE + ((keras.layers.Embedding,) if include_embeddings else ())
    found = []
    for layer in candidate_layers(model):
        if not isinstance(layer, kinds) or not matches(layer, layers, "layers"):
            continue
        if check and getattr(layer, "quantization_mode", None) is not None:
            raise ValueError(f"Layer {layer.name!r} is quantized ({layer.quantization_mode}): "
                             "prune the float model, then quantize (zeros stay zeros).")
        if check and getattr(layer, "lora_enabled", False):
            raise ValueError(f"Layer {layer.name!r} has LoRA adapters, whose update would "
                             "fill the pruned weights back in: merge them first "
                             "(pl.freezing.LoRA.merge(ft.backbone)).")
        name = "embeddings" if isinstance(layer, keras.layers.Embedding) else "kernel"
        found += [w for w in layer.weights if w.path.split("/")[-1] == name
                  and "float" in str(w.dtype)]
    return found


def _keep(magnitudes: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask keeping all but the `sparsity` fraction of smallest magnitudes (an
    exact count; zeros, i.e. weights pruned before, go first)."""
    count = int(round(sparsity * magnitudes.size))
    keep = np.ones(magnitudes.size, bool)
    if count:
        keep[np.argpartition(magnitudes, count - 1, kind="introselect")[:count]] = False
    return keep


def _check_sparsity(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be in [0, 1) (the fraction of weights set to "
                         f"zero). Received: {name}={value!r}")
    return float(value)
