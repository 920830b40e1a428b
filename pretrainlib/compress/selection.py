"""Which layers a compression step touches: a user's filter, never a preprocessor's."""

from __future__ import annotations

import re

from pretrainlib import keras_compat


def matches(layer, filters, name: str = "filters") -> bool:
    """Whether `layer` passes `filters`: None (all), a regex on its name, a list of
    regexes, or a callable `layer -> bool` (Keras's `quantize(filters=...)` rule)."""
    if filters is None:
        return True
    if isinstance(filters, str):
        return bool(re.search(filters, layer.name))
    if isinstance(filters, (list, tuple)):
        return any(re.search(pattern, layer.name) for pattern in filters)
    if callable(filters):
        return bool(filters(layer))
    raise TypeError(f"`{name}` must be a regex, a list of regexes or a callable "
                    f"layer -> bool. Received: {type(filters).__name__}")


def candidate_layers(model) -> list:
    """`model`'s nested layers, less those of its `preprocessor` (a tokenizer is a
    layer, with nothing to compress)."""
    preprocessor = getattr(model, "preprocessor", None)
    skip = set() if preprocessor is None else {
        id(layer) for layer in keras_compat.sublayers(preprocessor, include_self=True)}
    return [layer for layer in keras_compat.sublayers(model) if id(layer) not in skip]
