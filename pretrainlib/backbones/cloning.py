"""Copies of backbones: the same architecture and weights, separate variables."""

from __future__ import annotations

import keras


def clone(backbone: keras.Model) -> keras.Model:
    """A copy of `backbone` with its own variables, holding the same weights.

    A `FineTuner` (like any Keras model built on a layer) trains the backbone it is
    given in place, and LoRA enables itself on its layers; clone it first to keep
    the original, e.g. to fine-tune one pretrained backbone several ways. Works for
    any model that has a config: this library's backbones, KerasHub backbones,
    `keras.applications` and functional or sequential Keras models, SavedModel
    backbones from `pl.hub.load_backbone`. Trainable flags are copied too.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16)
        >>> copy = pl.backbones.clone(encoder)
        >>> copy is not encoder, all(np.array_equal(a, b) for a, b in
        ...                          zip(copy.get_weights(), encoder.get_weights()))
        (True, True)
    """
    if not isinstance(backbone, keras.Model):
        raise TypeError("`backbone` must be a keras.Model. Received: backbone of type "
                        f"{type(backbone).__name__}")
    try:
        config = backbone.get_config()
    except NotImplementedError:
        raise ValueError(
            f"`backbone` {backbone.name!r} ({type(backbone).__name__}) has no config to "
            "rebuild it from; implement get_config/from_config, or copy it yourself."
        ) from None
    copy = type(backbone).from_config(config)
    if not copy.built and backbone.built:
        copy.build_from_config(backbone.get_build_config())
    copy.set_weights(backbone.get_weights())
    return copy
