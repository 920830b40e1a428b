"""Post-training quantization of any model of this library, through Keras's own.

Keras 3 quantizes `Dense`, `EinsumDense` and `Embedding` layers in place
(`model.quantize(mode)`). `quantize` here adds what a user shipping a model needs:
it leaves a preprocessor's layers alone (a tokenizer is a layer Keras would refuse
to quantize, failing the whole call), checks the mode before anything changes, and
says which layers holding weights stay in float and why, instead of Keras's one
warning per weightless layer.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import keras

from pretrainlib import keras_compat, validation
from pretrainlib.compress.selection import candidate_layers, matches
from pretrainlib.freezing.peft import Adapter

__all__ = ["MODES", "QuantizationReport", "quantize"]

MODES = ("int8", "int4", "float8", "gptq", "awq")
"""The modes `quantize` takes (Keras 3.15's); `"gptq"` and `"awq"` calibrate on data
(`config=`)."""
_QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


@dataclasses.dataclass(frozen=True)
class QuantizationReport:
    """What `quantize` did: the paths of the layers it quantized, and the
    weight-holding layers left in float as `(path, class, parameters)`.

    Examples:
        >>> import keras, pretrainlib as pl
        >>> inputs = keras.Input((4,))
        >>> x = keras.layers.LayerNormalization(name="norm")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
        >>> print(pl.compress.quantize(model, "int4"))
        int4: 1 layers quantized; kept in float (Keras quantizes only Dense, EinsumDense and Embedding): norm (LayerNormalization, 8 params)
    """

    mode: str
    quantized: list
    kept_float: list

    def __str__(self) -> str:
        kept = ", ".join(f"{name} ({kind}, {count:,} params)"
                         for name, kind, count in self.kept_float) or "none"
        return (f"{self.mode}: {len(self.quantized)} layers quantized; kept in float "
                f"(Keras quantizes only Dense, EinsumDense and Embedding): {kept}")


def quantize(model: keras.Model, mode: str = "int8", config=None,
             filters=None) -> QuantizationReport:
    """Quantizes `model`'s Dense, EinsumDense and Embedding layers in place (Keras's
    `model.quantize`); the model then saves to `.keras`, reloads and exports as it
    is (`pl.hub.export`). Returns a `QuantizationReport`.

    Args:
        model: a built model (a FineTuner, a backbone, any Keras model); layers of
            its `preprocessor` are never quantized.
        mode: `"int8"`, `"int4"`, `"float8"` (weights stay trainable, e.g. for LoRA
            on a frozen int8 base), or `"gptq"` / `"awq"` with a calibration
            `config` (see `keras.quantizers.GPTQConfig`).
        config: a Keras quantization config, for custom quantizers or GPTQ/AWQ.
        filters: which layers to quantize: a regex on layer names, a list of them,
            or a callable `layer -> bool` (Keras's `filters`).

    Examples:
        >>> import keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((8,))
        >>> x = keras.layers.Conv1D(4, 1, name="conv")(keras.layers.Reshape((8, 1))(inputs))
        >>> outputs = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(x))
        >>> report = pl.compress.quantize(keras.Model(inputs, outputs), "int8")
        >>> report.quantized, [name for name, kind, count in report.kept_float]
        (['logits'], ['conv'])
    """
    validation.instance_of("model", model, keras.Model, "a built keras.Model")
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}")
    if mode in ("gptq", "awq") and config is None:
        raise ValueError(f"mode={mode!r} calibrates on data: pass `config=` (e.g. "
                         "keras.quantizers.GPTQConfig(dataset=..., tokenizer=...)).")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: call it on a batch first.")
    already = [layer.name for layer in keras_compat.sublayers(model)
               if getattr(layer, "quantization_mode", None) is not None]
    if already:
        raise ValueError(f"`model` is already quantized ({already[:5]}); quantize the float "
                         "model (reload it from before) instead.")
    adapters = [layer for layer in keras_compat.sublayers(model) if isinstance(layer, Adapter)]
    kept_trainable = {id(inner) for layer in adapters
                      for inner in keras_compat.sublayers(layer, include_self=True)}
    # Bottleneck adapters stay in float: they are what trains on a quantized base.
    candidates = [layer for layer in candidate_layers(model) if id(layer) not in kept_trainable]
    chosen_ids = {id(layer) for layer in candidates if matches(layer, filters)}
    with_lora = [layer.name for layer in candidates
                 if getattr(layer, "lora_enabled", False)]
    if with_lora:  # Keras saves such a layer merged and requantized: it would not reload
        raise ValueError(
            f"`model` has LoRA adapters (layers {with_lora[:5]}): merge them first, "
            "`ft = pl.freezing.LoRA.merge(ft)`, then quantize the merged model.")

    def chosen(layer):
        return id(layer) in chosen_ids

    with warnings.catch_warnings():  # a warning per weightless layer; the report says more
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize(mode, config=config,
                       filters=lambda layer: chosen(layer) and not _renamed(layer))
        # Keras refuses subclasses (they might change `call`); these only rename.
        model.quantize(mode, config=config, type_check=False,
                       filters=lambda layer: chosen(layer) and _renamed(layer))
    quantized, kept = [], []
    for layer in candidate_layers(model):
        if keras_compat.sublayers(layer):
            continue  # only leaves hold their own weights
        if getattr(layer, "quantization_mode", None) == mode:
            quantized.append(layer.path)
        elif layer.weights and any("seed" not in w.path for w in layer.weights):
            kept.append((layer.path, type(layer).__name__,
                         int(sum(math.prod(w.shape) for w in layer.weights))))
    return QuantizationReport(mode, quantized, kept)


def _renamed(layer) -> bool:
    """A KerasHub layer that is Keras's own under another name (same `call`)."""
    import keras_hub

    return type(layer) is keras_hub.layers.ReversibleEmbedding
