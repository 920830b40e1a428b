"""Which variables a FineTuner may train: yours, a transform's, a BatchNorm rule.

Before any policy runs, the variables you left trainable are read off the layers
(`backbone.trainable = False`, a frozen layer or variable, `load_backbone(...,
trainable=False)`): a policy never trains the others. A transform (LoRA, adapters,
BitFit) then says which backbone weights stay trainable and adds its own. The
result is saved with the model as the paths of the variables that never train,
because after a stage is applied the layers' flags say what *that stage* trains,
not what you froze.
"""

from __future__ import annotations

import dataclasses

import keras

from pretrainlib import keras_compat, validation
from pretrainlib.freezing.callback import remember_yours, trainable_candidates
from pretrainlib.freezing.peft import Transform
from pretrainlib.freezing.policy import group_variables


@dataclasses.dataclass
class Parts:
    """What a FineTuner keeps outside Keras's attribute tracking (which would track
    the layers a second time).

    Attributes:
        groups: `{group: [layers]}` bottom to top, the head last.
        network: the backbone as called (with adapters, if any).
        features: the FineTuner's inputs -> what the head reads.
        candidates: `id`s of the variables some stage may train.
        frozen: paths of the weights you froze.
        patterns: the `groups=` patterns given, if any.

    Examples:
        >>> import pretrainlib as pl
        >>> ft = pl.FineTuner(pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16),
        ...                   pl.heads.Classifier(2))
        >>> list(ft._parts.groups), ft._parts.frozen
        (['embeddings', 'block_0', 'head'], [])
    """

    groups: dict
    network: keras.Model
    features: keras.Model
    candidates: frozenset
    frozen: list
    patterns: dict | None


@dataclasses.dataclass
class Adapted:
    """A backbone prepared for fine-tuning, before the head is put on it.

    Attributes:
        network: the backbone as called (with adapters, if any).
        groups: its layer groups, bottom to top (a transform's layers placed).
        yours: `id`s of the backbone variables you left trainable.
        frozen: paths of the backbone weights you froze (saved with the model).
        added: `id`s of the layers the transform added.

    Examples:
        >>> import pretrainlib as pl
        >>> from pretrainlib.freezing import trainable
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16)
        >>> encoder.get_layer("transformer_layer_0").trainable = False
        >>> adapted = trainable.adapt(encoder, pl.backbones.layer_groups(encoder), None)
        >>> sorted({path.split("/")[0] for path in adapted.frozen})
        ['transformer_layer_0']
    """

    network: keras.Model
    groups: dict
    yours: frozenset
    frozen: list
    added: frozenset


def adapt(backbone: keras.Model, groups: dict, adapters: Transform | None,
          frozen: list | None = None) -> Adapted:
    """Reads what you left trainable in `backbone` (layer groups `groups`), then
    applies `adapters`.

    `frozen` (the paths saved with a model) replaces reading the layers' flags:
    once a stage has been applied, they say what that stage trained.
    """
    yours = trainable_candidates(groups) if frozen is None else None  # before any change
    weights = _weights_if_all_trainable(groups)
    variables = [v for layers in groups.values() for v in group_variables(layers)]
    if frozen is not None:
        frozen_paths = set(frozen)
        yours = frozenset(id(v) for v in variables
                          if id(v) in weights and v.path not in frozen_paths)
    remember_yours(groups, yours)
    frozen = sorted(v.path for v in variables if id(v) in weights - yours)
    before = {id(layer) for layer in keras_compat.sublayers(backbone, include_self=True)}
    network, groups = (backbone, groups) if adapters is None else adapters.apply(backbone,
                                                                                 groups)
    added = {id(sub) for sub in _sublayers(groups) if id(sub) not in before}
    return Adapted(network, groups, yours, frozen, frozenset(added))


def candidates(adapted: Adapted, head: keras.layers.Layer, adapters: Transform | None,
               frozen_batchnorm: bool) -> frozenset:
    """`id`s of the variables some stage may train: yours (and the head's) that the
    transform keeps, the transform's own, less BatchNorm under `frozen_batchnorm`.
    Call it with the head built."""
    groups = {**adapted.groups, "head": [head]}
    variables = [v for layers in groups.values() for v in group_variables(layers)]
    chosen = {id(v) for v in head.trainable_weights}
    chosen |= {id(v) for v in variables if id(v) in adapted.yours and (
        adapters is None or adapters.keeps(v))}
    if adapters is not None:
        chosen |= {id(v) for sub in _sublayers(adapted.groups) if id(sub) in adapted.added
                   for v in sub.weights}
        chosen |= {id(v) for v in variables if adapters.owns(v)}
    if frozen_batchnorm:
        chosen -= {id(v) for sub in _sublayers(adapted.groups)
                   if isinstance(sub, keras.layers.BatchNormalization) for v in sub.weights}
    return frozenset(chosen & _weights_if_all_trainable(groups))


def _sublayers(groups: dict):
    """Every layer of the groups, nested ones included."""
    for layers in groups.values():
        for layer in layers:
            yield from keras_compat.sublayers(layer, include_self=True)


def _weights_if_all_trainable(groups: dict) -> frozenset:
    """`id`s of the variables that are weights (that could train at all).

    Sets every layer trainable, which makes Keras mark every variable created
    trainable so again (a policy stage sets all flags next, so nothing is lost), and
    reads which are: BatchNorm statistics, seed states and quantized integer
    kernels are created non-trainable and stay so.
    """
    for layers in groups.values():
        for layer in layers:
            layer.trainable = True
    return frozenset(id(v) for layers in groups.values() for layer in layers
                     for v in layer.trainable_weights)


def resolve_batchnorm(batchnorm: str, backbone: keras.Model) -> str:
    """`"frozen"` or `"policy"` for a FineTuner's `batchnorm=` argument: `"auto"` is
    `"policy"` for this library's backbones (their BatchNorm is set up for small
    data) and `"frozen"` for any other (pretrained statistics kept, as Keras's
    transfer-learning guide advises)."""
    validation.one_of("batchnorm", batchnorm, ("auto", "frozen", "policy"))
    if batchnorm != "auto":
        return batchnorm
    return "policy" if type(backbone).__module__.startswith("pretrainlib.") else "frozen"
