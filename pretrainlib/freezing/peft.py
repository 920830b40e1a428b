"""Parameter-efficient methods as model transforms: LoRA, adapters, BitFit.

A transform says *what* can train (PEFT's split of config and method): it may add
weights to the backbone (LoRA's low-rank updates, adapter layers) and it decides
which of the backbone's own weights stay trainable. *When* each layer group trains
is the freezing policy's job, so any policy composes with any transform:
`FineTuner(backbone, head, policy=FreezeThenUnfreeze(1), adapters=LoRA(8))` trains
the head alone for an epoch, then the head and every LoRA update.
"""

from __future__ import annotations

import os
import tempfile

import keras

from pretrainlib import keras_compat, validation
from pretrainlib.backbones.layer_groups import matches

LORA_VARIABLES = ("lora_kernel_a", "lora_kernel_b")
# Variable names of biases and normalization parameters in Keras layers.
BIAS_AND_NORM = ("bias", "gamma", "beta")


class Transform:
    """Base class of parameter-efficient methods (`adapters=` of a FineTuner).

    Subclasses implement `apply(backbone, groups)`, returning the model the
    FineTuner calls and its layer groups (layers a transform adds join the group of
    the layer they adapt; their weights are free to train), `owns(variable)` for
    weights it adds inside existing layers (LoRA's), and `keeps(variable)` for the
    backbone weights that may still train. `merge` and `unload` turn an adapted
    backbone back into a plain one.

    Examples:
        >>> import pretrainlib as pl
        >>> class NormsOnly(pl.freezing.Transform):
        ...     def keeps(self, variable):
        ...         return variable.name in ("gamma", "beta")
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2), adapters=NormsOnly())
        >>> sorted({v.name for v in ft.trainable_weights})
        ['beta', 'bias', 'gamma', 'kernel']
    """

    # Whether `apply` changes the backbone's own layers (so the backbone alone computes
    # what the adapted model does) rather than building a new network around them.
    in_place = True

    def apply(self, backbone: keras.Model, groups: dict) -> tuple[keras.Model, dict]:
        return backbone, groups

    def owns(self, variable) -> bool:
        """Whether `variable` is a weight this transform added to a backbone layer."""
        return False

    def keeps(self, variable) -> bool:
        """Whether a backbone weight may still train under this transform."""
        return True

    def merge(self, backbone: keras.Model) -> keras.Model:
        """A plain backbone computing what the adapted one computes."""
        raise NotImplementedError(f"{type(self).__name__} cannot be merged into the weights.")

    def unload(self, backbone: keras.Model) -> keras.Model:
        """The backbone without this transform's weights (its updates dropped)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be unloaded.")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


@keras.saving.register_keras_serializable(package="pretrainlib")
class BitFit(Transform):
    """BitFit (Ben Zaken et al., 2022): in the backbone only biases and normalization
    scales/offsets train (`bias`, `gamma`, `beta`); the head trains fully.

    About 0.1% of a BERT's parameters, and the optimizer keeps slots for those only.
    As `policy=BitFit()` it trains them from the first step; as `adapters=BitFit()`
    the policy says when each group's biases start.

    Examples:
        >>> import pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2), adapters=pl.freezing.BitFit())
        >>> sorted({v.name for v in ft.trainable_weights} - {"kernel"})
        ['beta', 'bias', 'gamma']
    """

    def keeps(self, variable) -> bool:
        return matches(variable.name, BIAS_AND_NORM)


@keras.saving.register_keras_serializable(package="pretrainlib")
class LoRA(Transform):
    """LoRA (Hu et al., 2021) with Keras 3's built-in `enable_lora`.

    Every backbone layer whose name fully matches one of `targets` and that supports
    LoRA (`Dense`, `EinsumDense`, `Embedding`) gets a low-rank update
    `kernel + (alpha / rank) * A @ B` with `B` starting at zero; the backbone's own
    weights stay frozen, and the optimizer keeps slots for `A` and `B` only. The
    default targets are the attention query and value projections, as in the paper.

    LoRA is enabled on the backbone's layers in place (as `keras.layers.Dense.
    enable_lora` does); pass `pl.backbones.clone(backbone)` to keep yours plain.
    `merge(backbone)` folds the updates into the kernels (for export);
    `unload(backbone)` drops them.

    Args:
        rank: rank of the update.
        alpha: scale numerator (default `rank`, i.e. scale 1).
        targets: regular expressions on layer names.

    Examples:
        >>> import pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2), adapters=pl.freezing.LoRA(4))
        >>> print(ft.policy.summary(ft).splitlines()[2].split()[2:])
        ['frozen', 'train', '320', 'train', '34', '354']
        >>> merged = pl.freezing.LoRA.merge(ft.backbone)
        >>> any("lora" in v.path for v in merged.weights)
        False
    """

    def __init__(self, rank: int = 8, alpha: float | None = None,
                 targets=("query", "value")):
        self.rank = validation.positive_int("rank", rank)
        if alpha is not None:
            validation.positive_float("alpha", alpha)
        self.alpha = alpha
        if isinstance(targets, str) or not targets:
            raise ValueError(
                "`targets` must be a non-empty list of layer-name patterns, e.g. "
                f"['query', 'value']. Received: targets={targets!r}"
            )
        self.targets = tuple(targets)

    def apply(self, backbone, groups):
        supported = [layer for layer in keras_compat.sublayers(backbone)
                     if hasattr(layer, "enable_lora")]
        chosen = [layer for layer in supported if matches(layer.name, self.targets)]
        if not chosen:
            raise ValueError(
                f"LoRA `targets={list(self.targets)}` match no layer of {backbone.name!r} "
                "that supports LoRA. Layers that do: "
                f"{sorted({layer.name for layer in supported})}"
            )
        for layer in chosen:
            if not layer.lora_enabled:  # already on when restored from a config
                layer.enable_lora(self.rank, lora_alpha=self.alpha)
        return backbone, groups

    def owns(self, variable) -> bool:
        return variable.name in LORA_VARIABLES

    def keeps(self, variable) -> bool:
        return False

    @staticmethod
    def merge(backbone: keras.Model) -> keras.Model:
        """A copy of `backbone` without LoRA, its updates folded into the kernels.
        Given a whole FineTuner, a FineTuner without adapters (its head, policy
        state, preprocessor and class names kept), ready to quantize or export.

        Keras writes a LoRA layer's kernel merged when it saves weights, so the
        copy is the model rebuilt from its config without LoRA plus those weights.
        """
        config = _without_lora(backbone.get_config())
        preprocessor = getattr(backbone, "preprocessor", None)
        if "adapters" in config:  # a FineTuner: the same model, without the transform
            config["adapters"] = None
        if preprocessor is not None:  # shared: a tokenizer's vocabulary is not config
            config["preprocessor"] = None
        clean = backbone.__class__.from_config(config)
        if preprocessor is not None:
            clean.preprocessor = preprocessor
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "merged.weights.h5")
            backbone.save_weights(path)
            clean.load_weights(path)
        return clean

    @staticmethod
    def unload(backbone: keras.Model) -> keras.Model:
        """A copy of `backbone` without LoRA and without its updates: the base
        weights as they were before fine-tuning."""
        clean = LoRA.merge(backbone)
        plain = {layer.path: layer for layer in keras_compat.sublayers(clean)}
        for layer in keras_compat.sublayers(backbone):
            if getattr(layer, "lora_enabled", False):  # put the frozen base back
                base = keras_compat.lora_base_weight(layer)
                target = plain[layer.path]
                keras_compat.lora_base_weight(target).assign(base)
        return clean

    def get_config(self):
        return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets)}


def _without_lora(config):
    if isinstance(config, dict):
        return {k: _without_lora(v) for k, v in config.items()
                if k not in ("lora_rank", "lora_alpha")}
    if isinstance(config, list):
        return [_without_lora(v) for v in config]
    return config


@keras.saving.register_keras_serializable(package="pretrainlib")
class Adapter(keras.layers.Layer):
    """A Houlsby adapter: `x + up(activation(down(x)))`, the up-projection starting
    at zero so that the adapted model starts as the pretrained one.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> adapter = pl.freezing.Adapter(bottleneck=4)
        >>> x = np.ones((2, 3, 8), "float32")
        >>> bool(np.array_equal(adapter(x), x))
        True
    """

    def __init__(self, bottleneck: int, activation: str = "gelu", **kwargs):
        super().__init__(**kwargs)
        self.bottleneck = validation.positive_int("bottleneck", bottleneck)
        self.activation = activation
        self.down = keras.layers.Dense(bottleneck, activation=activation, name="down")
        self.up = None

    def build(self, input_shape):
        self.down.build(input_shape)
        self.up = keras.layers.Dense(input_shape[-1], kernel_initializer="zeros", name="up")
        self.up.build(tuple(input_shape[:-1]) + (self.bottleneck,))

    def call(self, x):
        return x + self.up(self.down(x))

    def get_config(self):
        return {**super().get_config(), "bottleneck": self.bottleneck,
                "activation": self.activation}


@keras.saving.register_keras_serializable(package="pretrainlib")
class Adapters(Transform):
    """Adapters (Houlsby et al., 2019): a small residual bottleneck after each block
    of a frozen backbone; only the adapters (and the head) train.

    Each adapter joins the layer group of the layer it follows, so a schedule such
    as `GradualUnfreeze` opens them block by block. The backbone's layers are
    shared, not copied: it is called inside a new functional graph with an
    `Adapter` after each target layer; the backbone object itself is unchanged,
    so `unload` gives it back.

    Args:
        bottleneck: width of each adapter's bottleneck.
        targets: regular expressions on the names of the layers to adapt; default
            the first layer of every backbone group but the lowest (for a
            `TextEncoder`, each transformer block).

    Examples:
        >>> import pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=2, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2),
        ...                   adapters=pl.freezing.Adapters(bottleneck=4))
        >>> [layer.name for layer in ft.layer_groups["block_1"]]
        ['transformer_layer_1', 'final_layer_norm', 'transformer_layer_1_adapter']
    """

    def __init__(self, bottleneck: int = 16, targets=None):
        self.bottleneck = validation.positive_int("bottleneck", bottleneck)
        if targets is not None and (isinstance(targets, str) or not targets):
            raise ValueError(
                "`targets` must be a non-empty list of layer-name patterns or None. "
                f"Received: targets={targets!r}"
            )
        self.targets = None if targets is None else tuple(targets)

    in_place = False  # a new network, with adapter layers between the backbone's

    def apply(self, backbone, groups):
        if self.targets is None:
            chosen = [layers[0] for layers in list(groups.values())[1:] if layers]
        else:
            chosen = [layer for layer in backbone.layers if matches(layer.name, self.targets)]
        if not chosen:
            raise ValueError(
                f"Adapters found no layer to adapt in {backbone.name!r}: pass `targets`, "
                f"layer-name patterns among {[layer.name for layer in backbone.layers]}."
            )
        adapters = {id(layer): Adapter(self.bottleneck, name=f"{layer.name}_adapter")
                    for layer in chosen}

        def call(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            adapter = adapters.get(id(layer))
            return outputs if adapter is None else adapter(outputs)

        try:
            adapted = keras.models.clone_model(
                backbone, clone_function=lambda layer: layer, call_function=call
            )
        except ValueError as error:
            raise ValueError(
                "Adapters need a functional backbone (keras.Model(inputs, outputs) or a "
                f"subclass such as pl.backbones.TextEncoder): {error}"
            ) from None
        missing = [a.name for a in adapters.values() if not a.built]
        if missing:
            raise ValueError(
                f"Adapters {missing} were never called: their target layers are not "
                f"top-level layers of {backbone.name!r}'s graph. Pass `targets` naming "
                f"some of {[layer.name for layer in backbone.layers]}."
            )
        placed = {name: list(layers) for name, layers in groups.items()}
        for name, layers in groups.items():
            placed[name] += [adapters[id(layer)] for layer in layers if id(layer) in adapters]
        return adapted, placed

    def keeps(self, variable) -> bool:
        return False

    def unload(self, backbone: keras.Model) -> keras.Model:
        """`backbone` itself: adapters live in the FineTuner's graph, not in it."""
        return backbone

    def get_config(self):
        return {"bottleneck": self.bottleneck,
                "targets": None if self.targets is None else list(self.targets)}
