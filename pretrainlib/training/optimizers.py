"""Optimizers that take per-layer-group learning-rate multipliers.

Keras applies one learning rate to every variable. Freezing policies need more:
discriminative rates (lower layers smaller) and, when a group is unfrozen mid-run,
Adam state that starts fresh for it. Keras 3 has `MultiOptimizer`, but learning-rate
callbacks reach only its first optimizer; so we add the two missing pieces to the
stock optimizers instead of wrapping them: every Keras optimizer class has a
pretrainlib twin (`with_lr_multipliers`) that scales each variable's rate.
"""

from __future__ import annotations

import keras
from keras import ops

from pretrainlib import keras_compat


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer a `keras.optimizers.LossScaleOptimizer` wraps (which Keras adds
    when a `"mixed_float16"` model compiles), else `optimizer` itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class _LRMultipliers(keras_compat.OptimizerOverrides):
    """Mixin: per-group learning-rate multipliers; clipping that sees the global batch."""

    def set_lr_multipliers(self, multipliers) -> None:
        """`[(variable, multiplier), ...]`; variables not named keep multiplier 1.

        Takes effect the next time the train function is traced (the FreezePolicy
        callback rebuilds it at every stage boundary).
        """
        if not self.built:
            raise RuntimeError("Build the optimizer before setting learning-rate multipliers.")
        self._lr_multipliers = {
            keras_compat.variable_index(self, v): float(m) for v, m in multipliers if m != 1
        }

    def _scaled_learning_rate(self, learning_rate, variable):
        multiplier = getattr(self, "_lr_multipliers", {}).get(
            keras_compat.variable_index(self, variable), 1.0
        )
        return learning_rate if multiplier == 1.0 else learning_rate * multiplier


    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(
            gradient, variable, self._scaled_learning_rate(learning_rate, variable)
        )


@keras.saving.register_keras_serializable(package="pretrainlib")
class SGD(_LRMultipliers, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-group learning-rate multipliers.

    Examples:
        >>> import pretrainlib as pl
        >>> opt = pl.training.SGD(learning_rate=0.1)
    """


@keras.saving.register_keras_serializable(package="pretrainlib")
class AdamW(_LRMultipliers, keras.optimizers.Adam):
    """AdamW with per-group learning-rate multipliers and per-variable step counts.

    Two differences from `keras.optimizers.AdamW`, both for freezing schedules:

    * Bias correction counts each variable's own updates (as PyTorch's per-parameter
      Adam state does), not the optimizer's global step. With Keras's global count, a
      group unfrozen at step 500 gets moments that start at zero but no bias
      correction, so its first updates are several times too large, which
      damages the pretrained weights it was meant to fine-tune.
    * Decoupled weight decay is applied with the variable's scaled learning rate.

    Biases and LayerNorm/BatchNorm scales (`bias`, `gamma`, `beta`) are excluded from
    weight decay by default.

    Examples:
        >>> import pretrainlib as pl
        >>> opt = pl.training.AdamW(learning_rate=1e-3, weight_decay=0.01)
    """

    def __init__(self, learning_rate=1e-3, weight_decay=0.01, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, name="adamw", **kwargs):
        kwargs.pop("amsgrad", None)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)
        # Keep decay out of the base class, which would apply it with the unscaled rate.
        self.decoupled_weight_decay = weight_decay
        self.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._steps = [
            self.add_variable(shape=(), dtype="float32", name=f"step_{i}")
            for i in range(len(var_list))
        ]

    def update_step(self, gradient, variable, learning_rate):
        index = keras_compat.variable_index(self, variable)
        lr = ops.cast(self._scaled_learning_rate(learning_rate, variable), variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        step = self._steps[index]
        self.assign_add(step, 1.0)
        local_step = ops.cast(step, variable.dtype)
        m, v = self._momentums[index], self._velocities[index]
        alpha = lr * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, variable.dtype), local_step))
        alpha = alpha / (1 - ops.power(ops.cast(self.beta_1, variable.dtype), local_step))
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(
            v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2)
        )
        if self.decoupled_weight_decay and self._use_weight_decay(variable):
            wd = ops.cast(self.decoupled_weight_decay, variable.dtype)
            self.assign_sub(variable, variable * wd * lr)
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha),
                                             ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        config["weight_decay"] = self.decoupled_weight_decay
        return config


@keras.saving.register_keras_serializable(package="pretrainlib")
class Adam(AdamW):
    """Adam as `keras.optimizers.Adam` (no weight decay by default), with this
    library's per-group learning-rate multipliers and per-variable bias correction
    (see `AdamW`): what `compile(optimizer="adam")` builds.

    Examples:
        >>> import pretrainlib as pl
        >>> pl.training.Adam(learning_rate=1e-3).decoupled_weight_decay
        0.0
    """

    def __init__(self, learning_rate=1e-3, weight_decay=0.0, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name,
                         **kwargs)


# String optimizers resolve to these; other Keras classes to a plain twin.
_OWN = {keras.optimizers.SGD: SGD, keras.optimizers.Adam: Adam, keras.optimizers.AdamW: AdamW}
_PLAIN: dict[type, type] = {keras.optimizers.SGD: SGD}


def _plain_twin(cls: type) -> type:
    """`cls` plus per-group multipliers and nothing else (same init, same state)."""
    if cls not in _PLAIN:
        # Adam and AdamW keep their names for this library's own versions.
        name = f"Keras{cls.__name__}" if cls in _OWN else cls.__name__
        twin = type(name, (_LRMultipliers, cls), {
            "__module__": __name__,
            "__doc__": f"`keras.optimizers.{cls.__name__}` with per-group learning-rate "
                       "multipliers.",
        })
        _PLAIN[cls] = keras.saving.register_keras_serializable(package="pretrainlib")(twin)
    return _PLAIN[cls]


def with_lr_multipliers(cls: type) -> type:
    """The pretrainlib twin of a Keras optimizer class: the same optimizer, whose
    rate each freezing-policy group can scale (`set_lr_multipliers`). Registered
    for saving under the package `pretrainlib`.

    `keras.optimizers.Adam` and `AdamW` map to this library's `Adam` and `AdamW`,
    which also count bias-correction steps per variable.

    Examples:
        >>> import keras
        >>> from pretrainlib.training.optimizers import with_lr_multipliers
        >>> Lion = with_lr_multipliers(keras.optimizers.Lion)
        >>> issubclass(Lion, keras.optimizers.Lion), hasattr(Lion, "set_lr_multipliers")
        (True, True)
    """
    if issubclass(cls, _LRMultipliers):
        return cls
    return _OWN.get(cls) or _plain_twin(cls)


def adopt(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Gives a stock Keras optimizer instance per-group rates, in place.

    The instance keeps its identity, settings and state: its class becomes a twin
    that adds only the multipliers (Keras's own update rule is kept, also for Adam),
    so a caller holding it sees the optimizer that trains. Optimizer classes Keras
    does not ship, or that delegate updates (`MultiOptimizer`), are left as they are. A `LossScaleOptimizer`'s inner optimizer is
    adopted.

    Examples:
        >>> import keras
        >>> from pretrainlib.training.optimizers import adopt
        >>> rmsprop = keras.optimizers.RMSprop(1e-3)
        >>> adopt(rmsprop) is rmsprop, hasattr(rmsprop, "set_lr_multipliers")
        (True, True)
    """
    inner = inner_optimizer(optimizer)
    cls = type(inner)
    # Only concrete Keras optimizers: their own class defines the update rule.
    if not isinstance(inner, _LRMultipliers) and cls.__module__.startswith("keras.") \
            and "update_step" in vars(cls):
        inner.__class__ = _plain_twin(cls)
    return optimizer
