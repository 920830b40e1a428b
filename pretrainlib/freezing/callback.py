"""Applies a FreezePolicy to a model: trainable flags, rate multipliers, train function."""

from __future__ import annotations

import keras

from pretrainlib.freezing.policy import group_variables, training_variables


def trainable_candidates(groups: dict[str, list[keras.layers.Layer]]) -> frozenset[int]:
    """`id`s of the variables a policy may train: those their layers made trainable.

    Sets every layer trainable (Keras then marks every variable it created trainable
    again, undoing earlier stages) and reads which variables are; variables created
    non-trainable (BatchNorm's moving statistics, seed states) never train.
    """
    for layers in groups.values():
        for layer in layers:
            layer.trainable = True
    return frozenset(id(v) for layers in groups.values() for v in group_variables(layers)
                     if v.trainable)


def apply_stage(policy, stage: int, groups: dict, candidates: frozenset[int]) -> list:
    """Sets `trainable` on the groups' layers and variables for one stage.

    Returns `[(variable, lr multiplier), ...]` for the variables that train. A frozen
    layer also runs in inference mode (Keras's rule), so frozen BatchNorm layers keep
    their moving statistics; so does a layer none of whose weights is a candidate
    (e.g. BatchNorm under `FineTuner(batchnorm="frozen")`), in every stage.
    """
    plans = policy.plan(stage, groups)
    multipliers = []  # Keras variables are unhashable: a list of pairs
    for name, layers in groups.items():
        plan = plans[name]
        for layer in layers:
            layer.trainable = plan.trains
            if plan.trains:  # parts that may never train stay frozen (inference mode)
                for sub in layer._flatten_layers(include_self=True):
                    if sub.weights and not any(id(v) in candidates for v in sub.weights):
                        sub.trainable = False
        for variable in group_variables(layers):
            if id(variable) in candidates:
                variable.trainable = plan.trains_variable(variable)
                if variable.trainable:
                    multipliers.append((variable, plan.multiplier))
    return multipliers


def variables_ever_trained(policy, groups: dict, candidates: frozenset[int]) -> list:
    """The variables that train in at least one stage, in model order: the optimizer
    is built on these only, so BitFit and LoRA keep no slots for frozen weights."""
    chosen = set()
    for stage in range(policy.num_stages(list(groups))):
        plans = policy.plan(stage, groups)
        for name, layers in groups.items():
            chosen.update(id(v) for v in training_variables(plans[name], layers, candidates))
    return [v for layers in groups.values() for v in group_variables(layers) if id(v) in chosen]


class PolicyCallback(keras.callbacks.Callback):
    """Sets `trainable` and learning-rate multipliers at each stage boundary.

    Keras 3 reads `trainable` when it traces the train function, so at a boundary
    the train function is rebuilt (`make_train_function(force=True)`); the
    optimizer object, and with it the state of variables that were training, is
    kept. The optimizer must have been built on every variable that will ever
    train (the FineTuner does that), or it would refuse the newly unfrozen ones.
    `FineTuner.fit` adds this callback itself; you need it only for a plain
    `keras.Model` of your own.

    Args:
        policy: a `pl.freezing.FreezePolicy`.
        groups: `{group name: [layers]}`, bottom to top, the head last.
        candidates: `id`s of the variables that may train (default: computed with
            `trainable_candidates(groups)`).

    Examples:
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

    def __init__(self, policy, groups: dict[str, list[keras.layers.Layer]],
                 candidates: frozenset[int] | None = None):
        super().__init__()
        self.policy = policy
        self.groups = groups
        self.candidates = trainable_candidates(groups) if candidates is None else candidates
        self.stage = None

    def apply(self, epoch: int) -> bool:
        """Applies the stage of `epoch`; returns True if it changed anything."""
        stage = self.policy.stage_index(epoch, list(self.groups))
        if stage == self.stage:
            return False
        multipliers = apply_stage(self.policy, stage, self.groups, self.candidates)
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
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
        # Retrace only if the step would differ: a new `fit` call whose first stage
        # trains what the last traced step trained, at the same rates, keeps it.
        traced = (tuple(id(v) for v in self.model.trainable_variables),
                  tuple(sorted(getattr(optimizer, "_lr_multipliers", {}).items())))
        if traced != getattr(self.model, "_policy_traced", None) or \
                self.model.train_function is None:
            self.model.make_train_function(force=True)
            object.__setattr__(self.model, "_policy_traced", traced)  # untracked by Keras
        return True

    def on_epoch_begin(self, epoch, logs=None):
        if self.policy.unit == "epoch":
            self.apply(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        # Keras looks `train_function` up before every step, so a function rebuilt
        # here runs from this very step on.
        if self.policy.unit == "step":
            self.apply(int(self.model.optimizer.iterations))
