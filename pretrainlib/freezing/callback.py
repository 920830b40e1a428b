"""Applies a FreezePolicy to a model: trainable flags, rate multipliers, train function."""

from __future__ import annotations

import keras

from pretrainlib import keras_compat
from pretrainlib.freezing.policy import group_variables, training_variables


def trainable_candidates(groups: dict[str, list[keras.layers.Layer]]) -> frozenset[int]:
    """`id`s of the variables a policy may train: those you left trainable.

    Read before any policy runs: a layer or model set `trainable = False`, or a
    variable created or set non-trainable (BatchNorm's moving statistics, seed
    states, a frozen kernel), never trains. A layer a policy has already set (one
    backbone fine-tuned twice) is read as you left it, unless you changed it since.
    """
    chosen = set()
    for layers in groups.values():
        for layer in layers:
            now = {id(v) for v in layer.trainable_weights}
            record = layer.__dict__.get(_RECORD)
            if record is None:
                chosen |= now
                continue
            yours, left = record
            for v in layer.weights:
                as_left = (id(v) in now) == (id(v) in left)  # nobody changed it since
                if (id(v) in yours) if as_left else (id(v) in now):
                    chosen.add(id(v))
    return frozenset(chosen)


# Per group layer: (what you left trainable, what the last stage left trainable).
_RECORD = "_pretrainlib_trainable"


def remember_yours(groups: dict, yours: frozenset[int], keep: bool = False) -> None:
    """Notes on each group layer which of its variables you left trainable (`yours`,
    or with `keep` what was noted before if anything was) and what trains now, so
    that a later `trainable_candidates` sees through the flags a policy set."""
    for layers in groups.values():
        for layer in layers:
            noted = frozenset(id(v) for v in layer.weights) & yours
            if keep and _RECORD in layer.__dict__:
                noted = layer.__dict__[_RECORD][0]
            now = frozenset(id(v) for v in layer.trainable_weights)
            layer.__dict__[_RECORD] = (noted, now)


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
            # Keras's setter also marks every variable the layer created trainable.
            layer.trainable = plan.trains
            if plan.trains:  # parts that may never train stay frozen (inference mode)
                for sub in keras_compat.sublayers(layer, include_self=True):
                    if sub.weights and not any(id(v) in candidates for v in sub.weights):
                        sub.trainable = False
        for variable in group_variables(layers):
            trains = id(variable) in candidates and plan.trains_variable(variable)
            if variable.trainable != trains:  # what is not a candidate stays frozen
                variable.trainable = trains
            if trains:
                multipliers.append((variable, plan.multiplier))
    remember_yours(groups, candidates, keep=True)
    return multipliers


def stage_variables(policy, stage: int, groups: dict, candidates: frozenset[int]) -> list:
    """The variables that train in one stage of `policy`, group by group."""
    plans = policy.plan(stage, groups)
    return [v for name, layers in groups.items()
            for v in training_variables(plans[name], layers, candidates)]


def variables_ever_trained(policy, groups: dict, candidates: frozenset[int]) -> list:
    """The variables that train in at least one stage, in model order: the optimizer
    is built on these only, so BitFit and LoRA keep no slots for frozen weights."""
    chosen = {id(v) for stage in range(policy.num_stages(list(groups)))
              for v in stage_variables(policy, stage, groups, candidates)}
    return [v for layers in groups.values() for v in group_variables(layers) if id(v) in chosen]


def stages_training_nothing(policy, groups: dict, candidates: frozenset[int]) -> list[int]:
    """The stages of `policy` in which no variable would train (e.g. a head-only stage
    with a head that owns no weights): worth an error before any step."""
    return [stage for stage in range(policy.num_stages(list(groups)))
            if not stage_variables(policy, stage, groups, candidates)]


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
        candidates: `id`s of the variables that may train (default: those
            trainable when the callback is made, `trainable_candidates(groups)`).
        epoch_offset: epochs the model trained before this `fit` (stage of Keras's
            epoch `e` is the policy's stage of `epoch_offset + e`).

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
                 candidates: frozenset[int] | None = None, epoch_offset: int = 0):
        super().__init__()
        self.policy = policy
        self.groups = groups
        self.candidates = trainable_candidates(groups) if candidates is None else candidates
        self.epoch_offset = epoch_offset
        self.stage = None

    def apply(self, epoch: int) -> bool:
        """Applies the stage of the model's absolute `epoch` (a step, for step
        policies); returns True if it changed anything."""
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
                f"{type(optimizer).__name__} does not support. Compile with a Keras "
                "optimizer (a string such as 'adamw', or a keras.optimizers instance), "
                "or a policy without learning-rate multipliers."
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
            self.apply(self.epoch_offset + epoch)

    def on_train_batch_begin(self, batch, logs=None):
        # Keras looks `train_function` up before every step, so a function rebuilt
        # here runs from this very step on.
        if self.policy.unit == "step":
            self.apply(int(self.model.optimizer.iterations.numpy()))
