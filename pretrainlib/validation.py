"""Argument checks shared by every public constructor.

Errors follow Keras's pattern: name the argument, say what was expected, echo what
came (``... Received: mask_rate=1.5``), so users fix the call without reading a trace.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(name: str, value: Any) -> int:
    """Returns `value` if it is a positive int, else raises a `ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return value


def non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return value


def open_unit_interval(name: str, value: Any) -> float:
    """Returns `value` if it lies strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(
            f"`{name}` must be a number strictly between 0 and 1. Received: {name}={value!r}"
        )
    return float(value)


def unit_interval(name: str, value: Any) -> float:
    """Returns `value` if it lies in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}")
    return float(value)


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return float(value)


def non_negative_float(name: str, value: Any) -> float:
    """Returns `value` if it is a number >= 0 (0.0 included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"`{name}` must be a number >= 0. Received: {name}={value!r}")
    return float(value)


def instance_of(name: str, value: Any, kinds, described: str) -> Any:
    """Returns `value` if it is an instance of `kinds`, else raises a `TypeError`
    saying it must be `described`."""
    if not isinstance(value, kinds):
        raise TypeError(f"`{name}` must be {described}. Received: {name} of type "
                        f"{type(value).__name__}")
    return value


def one_of(name: str, value: Any, choices) -> Any:
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices, key=str)}. Received: {name}={value!r}"
        )
    return value


def string_list(name: str, texts: Any) -> list[str]:
    """Returns `texts` as a list of str, or raises naming `name` and the first bad item."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"`{name}` must be a list of strings, not a single string. "
            f"Wrap it in a list. Received: {name}={texts[:60]!r}"
        )
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a list of strings. Received: {name} of type {type(texts).__name__}"
        ) from None
    if not texts:
        raise ValueError(f"`{name}` is empty; pass at least one text. Received: {name}=[]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`{name}` must contain only strings; item {i} is "
                f"{type(text).__name__}: {text!r}"
            )
    return texts


def class_labels(name: str, labels: Any, count: int, per: str) -> np.ndarray:
    """Returns `labels` as int32 class ids, one per `per` (`count` of them), or, for
    float labels (regression targets, `[count]` or `[count, outputs]`), as float32."""
    array = np.asarray(labels)
    if np.issubdtype(array.dtype, np.floating):
        if array.ndim not in (1, 2) or array.shape[0] != count:
            raise ValueError(
                f"`{name}` must hold one target (or one row of targets) per {per} "
                f"({count}). Received: {name} with shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"`{name}` must be finite; it holds NaN or infinity.")
        return array.astype("float32")
    if array.ndim != 1 or array.shape[0] != count:
        raise ValueError(
            f"`{name}` must hold one integer per {per} ({count}). "
            f"Received: {name} with shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"`{name}` must be integer class ids (or float regression targets). "
            f"Received: {name} of dtype {array.dtype}"
        )
    if array.min() < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: a label {array.min()}")
    return array.astype("int32")


def text_pairs(prompts: Any, targets: Any) -> tuple[list[str], list[str]]:
    """`(prompts, targets)` as lists of str of the same length, or a clear error."""
    prompts, targets = string_list("prompts", prompts), string_list("targets", targets)
    if len(prompts) != len(targets):
        raise ValueError(f"`prompts` has {len(prompts)} texts but `targets` has "
                         f"{len(targets)}; give one target per prompt.")
    return prompts, targets
