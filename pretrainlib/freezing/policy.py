"""The freezing policy: a schedule of stages over named layer groups."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import keras

from pretrainlib import validation

ALL = "all"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a policy, active from `start_epoch` until the next stage.

    Attributes:
        start_epoch: first epoch (0-based) of this stage.
        trainable: group names that train, or `"all"`.
        lr_multipliers: `{group: multiplier}` on the learning rate; others get 1.

    Groups may be named three ways: by name (`"block_0"`, `"head"`), by index among
    the backbone groups (`0` is the bottom, `-1` the top), or as `"backbone"`, all
    groups but the head. A named group overrides `"backbone"`.

    Example:
    >>> from pretrainlib.freezing import Stage
    >>> Stage(2, ["head", -1], {-1: 0.1}).get_config()
    {'start_epoch': 2, 'trainable': ['head', -1], 'lr_multipliers': {-1: 0.1}}
    """

    start_epoch: int = 0
    trainable: tuple[str, ...] | str = ALL
    lr_multipliers: dict = dataclasses.field(default_factory=dict)

    def get_config(self) -> dict:
        trainable = self.trainable if isinstance(self.trainable, str) else list(self.trainable)
        return {"start_epoch": self.start_epoch, "trainable": trainable,
                "lr_multipliers": dict(self.lr_multipliers)}

    @classmethod
    def from_config(cls, config: dict) -> "Stage":
        trainable = config.get("trainable", ALL)
        trainable = trainable if isinstance(trainable, str) else tuple(trainable)
        return cls(config.get("start_epoch", 0), trainable, dict(config.get("lr_multipliers", {})))


@keras.saving.register_keras_serializable(package="pretrainlib")
class FreezePolicy:
    """Which layer groups train, at which learning-rate multiplier, in which epoch.

    A policy is data: an ordered list of `Stage`s. The FineTuner applies it through
    a callback: at each stage boundary it sets `trainable` on the groups, sets the
    optimizer's per-group learning-rate multipliers and rebuilds the train function
    (Keras 3 ignores `trainable` changes until then). Optimizer state of variables
    that were already training is kept; newly unfrozen ones start fresh.

    The group names are the backbone's `layer_groups` (bottom to top) plus `"head"`.

    Args:
        stages: list of `Stage` (or their config dicts), ordered by `start_epoch`;
            the first must start at epoch 0.

    Example:
    >>> import pretrainlib as pl
    >>> from pretrainlib.freezing import FreezePolicy, Stage
    >>> policy = FreezePolicy([Stage(0, ["head"]),
    ...                        Stage(2, "all", {"embeddings": 0.1})])
    >>> policy.stage_index(3)
    1
    >>> print(policy.summary(["embeddings", "block_0", "head"]))
    stage  epochs  embeddings  block_0  head
    0      0-1     frozen      frozen   train
    1      2+      x0.1        train    train
    """

    def __init__(self, stages: Sequence[Stage | dict]):
        stages = [s if isinstance(s, Stage) else Stage.from_config(s) for s in stages]
        if not stages:
            raise ValueError("`stages` must hold at least one Stage. Received: stages=[]")
        starts = [s.start_epoch for s in stages]
        if starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(
                "`stages` must start at epoch 0 and have increasing `start_epoch`s. "
                f"Received start epochs: {starts}"
            )
        for stage in stages:
            validation.non_negative_int("start_epoch", stage.start_epoch)
            for group, multiplier in stage.lr_multipliers.items():
                if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) \
                        or multiplier < 0:
                    raise ValueError(
                        "`lr_multipliers` values must be non-negative numbers. "
                        f"Received: lr_multipliers[{group!r}]={multiplier!r}"
                    )
        self.stages = stages

    def stage_index(self, epoch: int) -> int:
        """Index of the stage active in `epoch`."""
        return max(i for i, s in enumerate(self.stages) if s.start_epoch <= epoch)

    def resolve(self, stage_index: int, groups: Iterable[str]) -> dict[str, float]:
        """`{group: lr multiplier}` for the groups that train in a stage (0 = frozen)."""
        groups = list(groups)
        stage = self.stages[stage_index]
        backbone_groups = [g for g in groups if g != "head"]

        def names_of(key) -> list[str]:
            if key == "backbone":
                return backbone_groups
            if isinstance(key, int) and not isinstance(key, bool):
                if not -len(backbone_groups) <= key < len(backbone_groups):
                    raise ValueError(
                        f"Group index {key} is out of range for the "
                        f"{len(backbone_groups)} backbone groups {backbone_groups}."
                    )
                return [backbone_groups[key]]
            if key not in groups:
                raise ValueError(
                    f"Unknown layer group {key!r} in {type(self).__name__}. "
                    f"The model's groups are: {groups} (or 'backbone', or an index)."
                )
            return [key]

        if stage.trainable == ALL:
            trainable = set(groups)
        else:
            trainable = {name for key in stage.trainable for name in names_of(key)}
        multipliers = {}
        # The "backbone" alias first, so that named groups override it.
        for key, value in sorted(stage.lr_multipliers.items(), key=lambda kv: kv[0] != "backbone"):
            for name in names_of(key):
                multipliers[name] = float(value)
        return {g: (multipliers.get(g, 1.0) if g in trainable else 0.0) for g in groups}

    def summary(self, groups) -> str:
        """A table: stage x group -> frozen / train / xMULTIPLIER.

        `groups` is a list of group names, or a FineTuner (whose groups are used).
        """
        if hasattr(groups, "layer_groups"):
            groups = list(groups.layer_groups)
        groups = list(groups)
        rows = [["stage", "epochs", *groups]]
        for i, stage in enumerate(self.stages):
            start = stage.start_epoch
            end = self.stages[i + 1].start_epoch - 1 if i + 1 < len(self.stages) else None
            epochs = f"{start}+" if end is None else str(start) if end == start else f"{start}-{end}"
            rates = self.resolve(i, groups)
            cells = ["frozen" if rates[g] == 0 else "train" if rates[g] == 1 else f"x{rates[g]:g}"
                     for g in groups]
            rows.append([str(i), epochs, *cells])
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                         for r in rows)

    def get_config(self) -> dict:
        return {"stages": [s.get_config() for s in self.stages]}

    @classmethod
    def from_config(cls, config: dict) -> "FreezePolicy":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"
