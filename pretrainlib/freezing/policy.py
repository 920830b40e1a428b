"""The freezing policy: a schedule of stages over named layer groups."""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence

import keras

from pretrainlib import validation
from pretrainlib.backbones.layer_groups import matches
from pretrainlib.formatting import count_params, human

ALL = "all"
HEAD = "head"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a policy, active from `start_epoch` until the next stage.

    Attributes:
        start_epoch: first epoch (0-based) of this stage.
        trainable: group names that train, or `"all"`.
        lr_multipliers: `{group: multiplier}` on the learning rate; others get 1.
        train_only: `{group: [regex, ...]}`: in these groups only the variables whose
            name (`"kernel"`, `"bias"`, `"gamma"`, `"lora_kernel_a"`...) fully matches
            one of the patterns train (BitFit, LoRA); other groups train every
            variable.

    Groups may be named three ways: by name (`"block_0"`, `"head"`), by index among
    the backbone groups (`0` is the bottom, `-1` the top), or as `"backbone"`, all
    groups but the head. A named group overrides `"backbone"`.

    Examples:
        >>> from pretrainlib.freezing import Stage
        >>> Stage(2, ["head", -1], {-1: 0.1}).get_config()
        {'start_epoch': 2, 'trainable': ['head', -1], 'lr_multipliers': {-1: 0.1}, 'train_only': {}}
    """

    start_epoch: int = 0
    trainable: tuple[str, ...] | str = ALL
    lr_multipliers: dict = dataclasses.field(default_factory=dict)
    train_only: dict = dataclasses.field(default_factory=dict)

    def get_config(self) -> dict:
        trainable = self.trainable if isinstance(self.trainable, str) else list(self.trainable)
        return {"start_epoch": self.start_epoch, "trainable": trainable,
                "lr_multipliers": dict(self.lr_multipliers),
                "train_only": {k: list(v) for k, v in self.train_only.items()}}

    @classmethod
    def from_config(cls, config: dict) -> "Stage":
        trainable = config.get("trainable", ALL)
        trainable = trainable if isinstance(trainable, str) else tuple(trainable)
        train_only = {k: tuple(v) for k, v in config.get("train_only", {}).items()}
        return cls(config.get("start_epoch", 0), trainable,
                   dict(config.get("lr_multipliers", {})), train_only)


@dataclasses.dataclass(frozen=True)
class GroupPlan:
    """What one group does in one stage: its rate multiplier (0 = frozen) and,
    if only some of its variables train, the name patterns of those.

    Examples:
        >>> from pretrainlib.freezing import FreezePolicy, Stage
        >>> policy = FreezePolicy([Stage(0, "all", {"block_0": 0.5}, {"block_0": ["bias"]})])
        >>> policy.plan(0, ["block_0", "head"])["block_0"]
        GroupPlan(multiplier=0.5, only=('bias',))
    """

    multiplier: float
    only: tuple[str, ...] | None = None

    @property
    def trains(self) -> bool:
        return self.multiplier > 0

    def trains_variable(self, variable) -> bool:
        if not self.trains:
            return False
        return self.only is None or matches(variable.name, self.only)


@keras.saving.register_keras_serializable(package="pretrainlib")
class FreezePolicy:
    """Which layer groups train, at which learning-rate multiplier, in which epoch.

    A policy is data: an ordered list of `Stage`s. The FineTuner applies it through
    a callback: at each stage boundary it sets `trainable` on the groups (and, for
    `train_only` stages, on single variables), sets the optimizer's per-group
    learning-rate multipliers and rebuilds the train function (Keras 3 ignores
    `trainable` changes until then). Optimizer state of variables that were already
    training is kept; newly unfrozen ones start fresh.

    The group names are the backbone's `layer_groups` (bottom to top) plus `"head"`.
    Subclasses may derive their stages from the model's groups: they pass
    `stages=None` and implement `stages_for(groups)`, the one source of every
    stage number (`stage_index`, `num_stages`, `plan`, `summary`). What can train
    inside a group (LoRA, adapters, BitFit) is a transform's job
    (`FineTuner(adapters=...)`), not a policy's.

    Args:
        stages: list of `Stage` (or their config dicts), ordered by `start_epoch`;
            the first must start at epoch 0.
        unit: `"epoch"` (default), or `"step"`: then `start_epoch` counts optimizer
            steps (`model.optimizer.iterations`) and a stage can begin mid-epoch.

    Examples:
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

    def __init__(self, stages: Sequence[Stage | dict] | None, unit: str = "epoch"):
        self.stages = None if stages is None else _check_stages(stages)
        self.unit = validation.one_of("unit", unit, ("epoch", "step"))

    # === Stages ===
    def stages_for(self, groups: Sequence[str] | None) -> list[Stage]:
        """The stages for a model with these groups. Fixed here; policies built with
        `stages=None` derive them from the groups and need them."""
        if self.stages is None:
            raise ValueError(
                f"{type(self).__name__}'s stages depend on the model's layer groups: pass "
                "`groups` (e.g. list(fine_tuner.layer_groups)).")
        return self.stages

    def stage_index(self, epoch: int, groups: Sequence[str] | None = None) -> int:
        """Index of the stage active in `epoch` (a step, if `unit="step"`)."""
        stages = self.stages_for(None if groups is None else list(groups))
        return max(i for i, s in enumerate(stages) if s.start_epoch <= epoch)

    def num_stages(self, groups: Sequence[str]) -> int:
        return len(self.stages_for(list(groups)))

    def check(self, groups: Sequence[str], stage: int | None = None) -> None:
        """Raises now, not at a stage boundary, if a stage names a group the model
        lacks, or `stage` (a `current_stage`) is not one of the stages."""
        count = self.num_stages(groups)
        for index in range(count):
            self.plan(index, groups)
        if stage is not None and not 0 <= stage < count:
            raise ValueError(f"`current_stage` must index one of the policy's {count} "
                             f"stages. Received: current_stage={stage}")

    def plan(self, stage_index: int, groups: Iterable[str]) -> dict[str, GroupPlan]:
        """`{group: GroupPlan}` for every group in a stage."""
        groups = list(groups)
        stage = self.stages_for(groups)[stage_index]
        names_of = _group_namer(groups, type(self).__name__)
        if stage.trainable == ALL:
            trainable = set(groups)
        else:
            trainable = {name for key in stage.trainable for name in names_of(key)}
        multipliers, only = {}, {}
        # The "backbone" alias first, so that named groups override it.
        for mapping, out in ((stage.lr_multipliers, multipliers), (stage.train_only, only)):
            for key, value in sorted(mapping.items(), key=lambda kv: kv[0] != "backbone"):
                for name in names_of(key):
                    out[name] = value
        return {
            g: GroupPlan(float(multipliers.get(g, 1.0)) if g in trainable else 0.0,
                         tuple(only[g]) if g in only else None)
            for g in groups
        }

    def resolve(self, stage_index: int, groups: Iterable[str]) -> dict[str, float]:
        """`{group: lr multiplier}` for the groups that train in a stage (0 = frozen)."""
        return {g: p.multiplier for g, p in self.plan(stage_index, groups).items()}

    # === Reporting ===
    def summary(self, groups) -> str:
        """A table: stage x group -> frozen / train / xMULTIPLIER.

        `groups` is a list of group names, or a FineTuner: then each cell also gives
        the parameters that train in that stage, a `params` row each group's size
        and a `trainable` column each stage's total.
        """
        model = groups if hasattr(groups, "layer_groups") else None
        groups = list(model.layer_groups) if model is not None else list(groups)
        rows = [["stage", f"{self.unit}s", *groups]]
        if model is not None:
            rows[0].append("trainable")
            totals = [count_params(group_variables(model.layer_groups[g])) for g in groups]
            rows.append(["params", "", *(human(n) for n in totals), human(sum(totals))])
        stages = self.stages_for(groups)
        for i, stage in enumerate(stages):
            start = stage.start_epoch
            end = stages[i + 1].start_epoch - 1 if i + 1 < len(stages) else None
            epochs = (f"{start}+" if end is None else str(start) if end == start
                      else f"{start}-{end}")
            plans = self.plan(i, groups)
            cells, stage_total = [], 0
            for g in groups:
                p = plans[g]
                count = None
                if model is not None and p.trains:
                    count = count_params(training_variables(p, model.layer_groups[g],
                                                      model.trainable_candidates))
                stage_total += count or 0
                if not p.trains or count == 0:
                    cells.append("frozen")
                    continue
                cell = "train" if p.multiplier == 1 else f"x{p.multiplier:g}"
                if p.only is not None:
                    cell += "(" + "|".join(p.only) + ")"
                cells.append(cell if count is None else f"{cell} {human(count)}")
            if model is not None:
                cells.append(human(stage_total))
            rows.append([str(i), epochs, *cells])
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                         for r in rows)

    # === Config ===
    def get_config(self) -> dict:
        config = {"stages": [s.get_config() for s in self.stages]}
        if self.unit != "epoch":
            config["unit"] = self.unit
        return config

    @classmethod
    def from_config(cls, config: dict) -> "FreezePolicy":
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def _check_stages(stages) -> list[Stage]:
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
        for group, patterns in stage.train_only.items():
            if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(
                    "`train_only` maps a group to a list of variable-name patterns, e.g. "
                    f"{{'backbone': ['bias']}}. Received: train_only[{group!r}]={patterns!r}"
                )
            for p in patterns:
                try:
                    re.compile(p)
                except re.error as error:
                    raise ValueError(
                        f"`train_only[{group!r}]` holds an invalid pattern {p!r}: {error}"
                    ) from None
    return stages


def _group_namer(groups: list[str], policy_name: str):
    backbone_groups = [g for g in groups if g != HEAD]

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
                f"Unknown layer group {key!r} in {policy_name}. "
                f"The model's groups are: {groups} (or 'backbone', or an index)."
            )
        return [key]

    return names_of


def group_variables(layers) -> list:
    """The weights of `layers`, each once, in order."""
    seen, out = set(), []
    for layer in layers:
        for v in layer.weights:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def training_variables(plan: GroupPlan, layers, candidates: frozenset[int]) -> list:
    """The variables of a group's `layers` that train under `plan`; `candidates` are
    the `id`s of the variables that may train at all."""
    return [v for v in group_variables(layers) if id(v) in candidates and plan.trains_variable(v)]
