"""Class names to class ids: the label vocabulary a dataset carries to its model.

String labels (`"positive"`, `"noun.animal"`) become ids through a vocabulary: the
one you give (`label_vocabulary=[...]`, in the order of the ids) or, by default,
the sorted names found, as `keras.utils.text_dataset_from_directory` orders its
class folders. The dataset carries it as `class_names` (Keras's attribute); a
`FineTuner` trained on it saves it, and the `Evaluator` names classes with it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def vocabulary(name: str, found, given: Sequence[str] | None) -> list[str]:
    """The class names: `given` (checked), or the sorted names `found`."""
    if given is None:
        return sorted(str(label) for label in found)
    if isinstance(given, (str, bytes)) or not all(isinstance(v, str) for v in given):
        raise TypeError(f"`{name}` must be a list of class names (strings). Received: "
                        f"{name}={given!r}")
    given = list(given)
    if not given:
        raise ValueError(f"`{name}` is empty; list the class names.")
    repeated = sorted({v for v in given if given.count(v) > 1})
    if repeated:
        raise ValueError(f"`{name}` names a class twice: {repeated}")
    return given


def is_names(labels) -> bool:
    """Whether `labels` (a list or an array) holds class names (all of them str)."""
    values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
    return bool(values) and all(isinstance(v, str) for v in values)


def class_ids(name: str, labels, names: Sequence[str], per: str = "example") -> np.ndarray:
    """`labels` (class names) as int32 ids in `names`; a name not there fails
    naming the first such label and its position."""
    index = {label: i for i, label in enumerate(names)}
    ids = np.empty(len(labels), "int32")
    for i, label in enumerate(labels):
        if label not in index:
            raise ValueError(
                f"`{name}` holds {label!r} (at {per} {i}), which is not in the label "
                f"vocabulary {list(names)[:20]}; add it to `label_vocabulary` or drop it.")
        ids[i] = index[label]
    return ids
