"""Applies a FreezePolicy during `fit`, as a Keras callback."""

from __future__ import annotations

import keras


class PolicyCallback(keras.callbacks.Callback):
    """Sets `trainable` and learning-rate multipliers at each stage boundary.

    Keras 3 reads `trainable` when it traces the train function, so at a boundary
    the train function is rebuilt (`make_train_function(force=True)`); the
    optimizer object, and with it the state of variables that were training, is
    kept. The optimizer must have been built on all variables beforehand (the
    FineTuner does that), or it would refuse the newly unfrozen ones.
    `FineTuner.fit` adds this callback itself; you need it only for a plain
    `keras.Model` of your own.

    Example:
    >>> import keras, pretrainlib as pl
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="body"),
    ...                           keras.layers.Dense(2, name="head")])
    >>> model.compile(optimizer=pl.training.SGD(0.1), loss="mse")
    >>> model.optimizer.build(model.trainable_variables)
    >>> callback = pl.freezing.PolicyCallback(
    ...     pl.freezing.FeatureExtraction(),
    ...     {"body": [model.get_layer("body")], "head": [model.get_layer("head")]})
    >>> callback.set_model(model)
    >>> callback.apply(epoch=0), model.get_layer("body").trainable
    (True, False)
    """

    def __init__(self, policy, groups: dict[str, list[keras.layers.Layer]]):
        super().__init__()
        self.policy = policy
        self.groups = groups
        self.stage = None

    def apply(self, epoch: int) -> bool:
        """Applies the stage of `epoch`; returns True if it changed anything."""
        stage = self.policy.stage_index(epoch)
        if stage == self.stage:
            return False
        rates = self.policy.resolve(stage, self.groups)
        multipliers = []  # (variable, multiplier); Keras variables are unhashable
        for name, layers in self.groups.items():
            for layer in layers:
                layer.trainable = rates[name] > 0
                if rates[name] > 0:
                    multipliers += [(v, rates[name]) for v in layer.trainable_variables]
        optimizer = self.model.optimizer
        if hasattr(optimizer, "set_lr_multipliers"):
            optimizer.set_lr_multipliers(multipliers)
        elif any(m != 1.0 for _, m in multipliers):
            raise ValueError(
                f"{type(self.policy).__name__} sets per-group learning rates, which "
                f"{type(optimizer).__name__} does not support. Compile with "
                "optimizer='adamw' or 'sgd' (pretrainlib's), or a policy without "
                "learning-rate multipliers."
            )
        self.stage = stage
        self.model.current_stage = stage
        self.model.make_train_function(force=True)
        return True

    def on_epoch_begin(self, epoch, logs=None):
        self.apply(epoch)
