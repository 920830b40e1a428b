"""Ordered layer groups for any Keras model: the unit freezing policies act on."""

from __future__ import annotations

import keras


def layer_groups(model: keras.Model) -> dict[str, list[keras.layers.Layer]]:
    """Returns `{group_name: [layers]}` ordered from the input to the output.

    Backbones of this library define `layer_groups` themselves. Any other Keras
    model gets one group per top-level layer that owns weights, named after it, in
    the order the model lists its layers.
    """
    groups = getattr(model, "layer_groups", None)
    if groups is not None:
        return dict(groups)
    return {layer.name: [layer] for layer in model.layers if layer.weights}
