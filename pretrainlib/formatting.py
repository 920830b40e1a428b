"""A few lines saying what a Pretrainer or FineTuner is and what trains in it.

Keras's `Model.summary()` lists every layer; for a backbone wrapped in a task model
the questions are different: which backbone, which objective or head, which policy
stage, how many of the parameters train. `TrainingCore.summary()` answers those and
adds Keras's table on request.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Iterable, Sequence


def count_params(variables: Iterable) -> int:
    """Number of scalars in `variables`."""
    return sum(math.prod(int(dim) for dim in variable.shape) for variable in variables)


def human(n: int) -> str:
    """`1234567 -> '1.2M'`, `1500 -> '1.5k'`, `12 -> '12'`."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def describe(obj) -> str:
    """`TypeName(key=value, ...)` with the plain values of `obj.get_config()` that
    differ from the constructor's defaults, as scikit-learn prints estimators (a
    container of named parts, such as `pl.heads.Heads`, lists them)."""
    parts = getattr(obj, "heads", None)
    if isinstance(parts, dict):
        return (f"{type(obj).__name__}("
                + ", ".join(f"{name}={describe(part)}" for name, part in parts.items()) + ")")
    try:
        config = obj.get_config()
    except (AttributeError, NotImplementedError):
        config = {}
    try:
        defaults = {name: p.default for name, p in
                    inspect.signature(type(obj).__init__).parameters.items()}
    except (TypeError, ValueError):
        defaults = {}
    plain = (bool, int, float, str, type(None))
    shown = [f"{key}={value!r}" for key, value in config.items()
             if key in defaults and isinstance(value, plain) and value != defaults[key]]
    return f"{type(obj).__name__}({', '.join(shown)})"


def backbone_line(backbone) -> str:
    """`TextEncoder "text_encoder": 1.2M params`."""
    return (f'{type(backbone).__name__} "{backbone.name}": '
            f"{human(count_params(backbone.weights))} params")


def render(title: str, rows: Sequence[tuple[str, str]], print_fn: Callable | None = None) -> str:
    """Prints `title` and the `(label, text)` rows aligned (multi-line text indented);
    returns the printed text."""
    width = max(len(label) for label, _ in rows)
    lines = [title]
    for label, text in rows:
        first, *rest = str(text).split("\n")
        lines.append(f"  {label.ljust(width)}  {first}")
        lines += [f"  {' ' * width}  {line}" for line in rest]
    text = "\n".join(lines)
    (print_fn or print)(text)
    return text


# === The rows of `summary()` for this library's models ===
def trainable_rows(model) -> list[tuple[str, str]]:
    total, trainable = count_params(model.weights), count_params(model.trainable_weights)
    rows = [("trainable", f"{human(trainable)} of {human(total)} parameters "
                          f"({100 * trainable / max(total, 1):.1f}%)")]
    pruning = getattr(model, "_pruning", None)  # set by pl.compress.prune
    if pruning is not None:
        rows.append(("pruned", pruning.describe()))
    return rows


def pretrainer_rows(pretrainer) -> list[tuple[str, str]]:
    head = count_params(pretrainer.weights) - count_params(pretrainer.backbone.weights)
    return [("backbone", backbone_line(pretrainer.backbone)),
            ("objective", f"{describe(pretrainer.objective)}: head {human(head)} params")]


def fine_tuner_rows(ft) -> list[tuple[str, str]]:
    names = list(ft.layer_groups)
    groups = ", ".join(name for name in names if name != "head")
    rows = [("backbone", f"{backbone_line(ft.backbone)}; groups {groups}"),
            ("head", f"{describe(ft.head)}: {human(count_params(ft.head.weights))} params")]
    if ft.adapters is not None:
        rows.append(("adapters", describe(ft.adapters)))
    frozen = set(ft._parts.frozen)
    if frozen:
        count = count_params(v for v in ft.weights if v.path in frozen)
        rows.append(("frozen", f"{human(count)} params you froze never train"))
    rows.append(("policy", f"{describe(ft.policy)}, in stage {ft.current_stage or 0} of "
                           f"{ft.policy.num_stages(names)}\n{ft.policy.summary(ft)}"))
    return rows
