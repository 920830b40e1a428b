"""Policies that add a few trainable weights to a frozen backbone: LoRA, adapters."""

from __future__ import annotations

import os
import tempfile

import keras

from pretrainlib import validation
from pretrainlib.backbones.layer_groups import matches
from pretrainlib.freezing.policy import ALL, FreezePolicy, Stage

LORA_VARIABLES = ("lora_kernel_a", "lora_kernel_b")


@keras.saving.register_keras_serializable(package="pretrainlib")
class LoRA(FreezePolicy):
    """LoRA (Hu et al., 2021) with Keras 3's built-in `enable_lora`.

    Every backbone layer whose name fully matches one of `targets` and that supports
    LoRA (`Dense`, `EinsumDense`, `Embedding`) gets a low-rank update
    `kernel + (alpha / rank) * A @ B` with `B` starting at zero; only `A`, `B` and
    the head train, and the optimizer keeps slots for those only. The default
    targets are the attention query and value projections, as in the paper.
    `LoRA.merge(backbone)` folds the updates into the kernels for export.

    Args:
        rank: rank of the update.
        alpha: scale numerator (default `rank`, i.e. scale 1).
        targets: regular expressions on layer names.

    Examples:
        >>> import pretrainlib as pl
        >>> encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2), policy=pl.freezing.LoRA(rank=4))
        >>> print(ft.policy.summary(ft).splitlines()[2].split()[2:])
        ['frozen', 'train(lora_kernel_a|lora_kernel_b)', '320', 'train', '34', '354']
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
        super().__init__([Stage(0, ALL, train_only={"backbone": LORA_VARIABLES})])

    def prepare(self, backbone, groups):
        supported = [layer for layer in backbone._flatten_layers(include_self=False)
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

    @staticmethod
    def merge(backbone: keras.Model) -> keras.Model:
        """A copy of `backbone` without LoRA, its updates folded into the kernels.

        Keras writes a LoRA layer's kernel merged when it saves weights, so the
        copy is the model rebuilt from its config without LoRA plus those weights.
        """
        clean = backbone.__class__.from_config(_without_lora(backbone.get_config()))
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "merged.weights.h5")
            backbone.save_weights(path)
            clean.load_weights(path)
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
class Adapters(FreezePolicy):
    """Adapters (Houlsby et al., 2019): a small residual bottleneck after each block
    of a frozen backbone; only the adapters and the head train.

    The adapters form their own layer group, `"adapters"`, just below the head. The
    backbone's layers are shared, not copied: it is called inside a new functional
    graph with an `Adapter` after each target layer.

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
        ...                   policy=pl.freezing.Adapters(bottleneck=4))
        >>> list(ft.layer_groups)
        ['embeddings', 'block_0', 'block_1', 'adapters', 'head']
        >>> [a.name for a in ft.layer_groups["adapters"]]
        ['transformer_layer_0_adapter', 'transformer_layer_1_adapter']
    """

    def __init__(self, bottleneck: int = 16, targets=None):
        self.bottleneck = validation.positive_int("bottleneck", bottleneck)
        if targets is not None and (isinstance(targets, str) or not targets):
            raise ValueError(
                "`targets` must be a non-empty list of layer-name patterns or None. "
                f"Received: targets={targets!r}"
            )
        self.targets = None if targets is None else tuple(targets)
        super().__init__([Stage(0, ("adapters", "head"))])

    def prepare(self, backbone, groups):
        if self.targets is None:
            chosen = [layers[0] for layers in list(groups.values())[1:] if layers]
        else:
            chosen = [layer for layer in backbone._flatten_layers(include_self=False)
                      if matches(layer.name, self.targets)]
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
        return adapted, {**groups, "adapters": list(adapters.values())}

    def get_config(self):
        return {"bottleneck": self.bottleneck,
                "targets": None if self.targets is None else list(self.targets)}
