"""Ordered layer groups for any Keras model: the unit freezing policies act on."""

from __future__ import annotations

import re

import keras


def matches(name: str, patterns) -> bool:
    """Whether `name` fully matches one of the regular expressions in `patterns`."""
    return any(re.fullmatch(p, name) for p in patterns)


def layer_groups(model: keras.Model, patterns: dict | None = None
                 ) -> dict[str, list[keras.layers.Layer]]:
    """Returns `{group_name: [layers]}` ordered from the input to the output.

    Without `patterns`, backbones of this library give their own `layer_groups`;
    transformer backbones with numbered blocks (KerasHub's `transformer_layer_0`,
    `transformer_layer_1`, ... as in `BertBackbone`, `RobertaBackbone`, `GPT2Backbone`)
    get `embeddings` (every layer with weights below the first block), `block_0` ...
    `block_{n-1}` (layers above the last block, such as a pooler or final norm, join
    the top block); `keras.applications` models get `stem`, one group per block as
    their layer names number them (`conv2_block1` in ResNet and DenseNet, `block_1`
    in MobileNetV2, `block1a` in EfficientNet, `block1` in VGG, `stage_0_block_0` in
    ConvNeXt; unnumbered layers between blocks join the block before) and `top`;
    any other Keras model gets one group per top-level layer that owns weights,
    named after it, in the order the model lists its layers.

    Args:
        model: a Keras model.
        patterns: optional `{group name: regex or [regex, ...]}`, bottom group first;
            a group holds the top-level layers whose names fully match one of its
            patterns. Every layer with weights must fall in exactly one group.

    Examples:
        >>> import keras, pretrainlib as pl
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="low_1"),
        ...                           keras.layers.Dense(8, name="low_2"),
        ...                           keras.layers.Dense(2, name="top")])
        >>> list(pl.backbones.layer_groups(model))
        ['low_1', 'low_2', 'top']
        >>> groups = pl.backbones.layer_groups(model, {"low": "low_.*", "top": ["top"]})
        >>> {name: [layer.name for layer in layers] for name, layers in groups.items()}
        {'low': ['low_1', 'low_2'], 'top': ['top']}
    """
    if patterns is None:
        groups = getattr(model, "layer_groups", None)
        if groups is not None:
            return dict(groups)
        return _numbered_blocks(model) or _named_blocks(model) or {
            layer.name: [layer] for layer in model.layers if layer.weights}
    if not isinstance(patterns, dict) or not patterns:
        raise ValueError(
            "`groups` must be a non-empty dict {group name: layer-name pattern(s)}, e.g. "
            f"{{'low': 'conv_.*', 'high': ['dense']}}. Received: {patterns!r}"
        )
    groups, owner = {}, {}
    for name, group_patterns in patterns.items():
        group_patterns = [group_patterns] if isinstance(group_patterns, str) else group_patterns
        members = [layer for layer in model.layers
                   if matches(layer.name, group_patterns)]
        if not members:
            raise ValueError(
                f"Layer group {name!r}: patterns {list(group_patterns)} match no top-level "
                f"layer of {model.name!r}. Its layers: {[layer.name for layer in model.layers]}"
            )
        for layer in members:
            if layer.name in owner:
                raise ValueError(
                    f"Layer {layer.name!r} matches groups {owner[layer.name]!r} and "
                    f"{name!r}; each layer belongs to one group."
                )
            owner[layer.name] = name
        groups[name] = members
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in owner]
    if missing:
        raise ValueError(
            f"Layers {missing} of {model.name!r} have weights but match no group; add "
            "them to a group's patterns (or they could never train)."
        )
    return groups


# How KerasHub names the repeated blocks of its transformer backbones.
_BLOCK = re.compile(r"(transformer_layer|decoder_block|encoder_layer|transformer_block)_(\d+)")


def _numbered_blocks(model: keras.Model) -> dict | None:
    """Groups by numbered transformer blocks, or None when the model has no run
    `<prefix>_0 .. <prefix>_{n-1}` (n >= 1) in order between weighted layers."""
    weighted = [layer for layer in model.layers if layer.weights]
    found = [(i, _BLOCK.fullmatch(layer.name)) for i, layer in enumerate(weighted)]
    found = [(i, m) for i, m in found if m]
    if not found or len({m.group(1) for _, m in found}) != 1:
        return None
    positions = [i for i, _ in found]
    numbers = [int(m.group(2)) for _, m in found]
    if numbers != list(range(len(found))) or positions != list(
            range(positions[0], positions[0] + len(found))):
        return None
    groups = {}
    if positions[0]:
        groups["embeddings"] = weighted[:positions[0]]
    for n, i in enumerate(positions):
        groups[f"block_{n}"] = [weighted[i]]
    groups[f"block_{len(positions) - 1}"] += weighted[positions[-1] + 1:]
    return groups


# How keras.applications name the blocks of their convolutional networks.
_NAMED_BLOCK = re.compile(r"stage_\d+_block_\d+|conv\d+_block\d+|block_?\d+[a-z]?")


def _named_blocks(model: keras.Model) -> dict | None:
    """`stem`, one group per named block, `top`; None unless two or more blocks."""
    weighted = [layer for layer in model.layers if layer.weights]
    found = [_NAMED_BLOCK.search(layer.name) for layer in weighted]
    last = max((i for i, match in enumerate(found) if match), default=-1)
    groups, current = {}, "stem"
    for i, (layer, match) in enumerate(zip(weighted, found)):
        current = match.group(0) if match else "top" if i > last else current
        groups.setdefault(current, []).append(layer)
    blocks = [name for name in groups if name not in ("stem", "top")]
    return groups if len(blocks) >= 2 else None
