"""Optimizers that take per-layer-group learning-rate multipliers.

Keras applies one learning rate to every variable. Freezing policies need more:
discriminative rates (lower layers smaller) and, when a group is unfrozen mid-run,
Adam state that starts fresh for it. Keras 3 has `MultiOptimizer`, but learning-rate
callbacks reach only its first optimizer; so we add the two missing pieces to the
stock optimizers instead of wrapping them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer a `keras.optimizers.LossScaleOptimizer` wraps (which Keras adds
    when a `"mixed_float16"` model compiles), else `optimizer` itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class _LRMultipliers:
    """Mixin: per-group learning-rate multipliers; clipping that sees the global batch."""

    def _clip_gradients(self, grads):
        # Keras clips each replica's own gradient and sums the replicas afterwards, so
        # under a distribution strategy `clipnorm` bounds a quantity that depends on
        # the replica count and one device's weights are not reproduced. Clip the
        # all-reduced gradient instead, and hand each replica 1/n of it: Keras's later
        # all-reduce sums the n shares back to the clipped global gradient.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas == 1 or not (self.clipnorm or self.global_clipnorm or self.clipvalue):
            return super()._clip_gradients(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
        clipped = super()._clip_gradients(summed)
        shares = list(grads)
        for i, g in zip(present, clipped):
            shares[i] = (tf.IndexedSlices(g.values / replicas, g.indices, g.dense_shape)
                         if isinstance(g, tf.IndexedSlices) else g / replicas)
        return shares

    def set_lr_multipliers(self, multipliers) -> None:
        """`[(variable, multiplier), ...]`; variables not named keep multiplier 1.

        Takes effect the next time the train function is traced (the FreezePolicy
        callback rebuilds it at every stage boundary).
        """
        if not self.built:
            raise RuntimeError("Build the optimizer before setting learning-rate multipliers.")
        self._lr_multipliers = {
            self._get_variable_index(v): float(m) for v, m in multipliers if m != 1
        }

    def _scaled_learning_rate(self, learning_rate, variable):
        multiplier = getattr(self, "_lr_multipliers", {}).get(
            self._get_variable_index(variable), 1.0
        )
        return learning_rate if multiplier == 1.0 else learning_rate * multiplier


@keras.saving.register_keras_serializable(package="pretrainlib")
class SGD(_LRMultipliers, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-group learning-rate multipliers.

    Examples:
        >>> import pretrainlib as pl
        >>> opt = pl.training.SGD(learning_rate=0.1)
    """

    def update_step(self, gradient, variable, learning_rate):
        return super().update_step(
            gradient, variable, self._scaled_learning_rate(learning_rate, variable)
        )


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
        index = self._get_variable_index(variable)
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
