"""Mixed precision as one `compile` argument.

Keras sets precision per layer, through each layer's dtype policy, normally chosen
before the layers are built (`keras.config.set_dtype_policy`). A Pretrainer or
FineTuner wraps a backbone the user already built, so `compile(precision=...)`
sets the policy on every layer of the finished model instead: variables stay
float32, each layer computes in the policy's compute dtype (Keras casts variables
and float inputs as it calls the layer), and losses and metrics cast predictions
back to float32 before they reduce. Keras wraps the optimizer of a
`"mixed_float16"` model in a `LossScaleOptimizer` when it compiles.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat, validation

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def resolve(precision: str) -> str:
    """The dtype policy name for `precision`; `"auto"` picks by hardware.

    `"auto"`: `"mixed_bfloat16"` on TPU, `"mixed_float16"` (with loss scaling) on
    GPU, and `"float32"` on CPU, where bfloat16 was measured no faster than float32
    (docs/benchmarks.md; CPUs with AMX may differ): name it to use it there.

    Examples:
        >>> from pretrainlib.training import precision
        >>> precision.resolve("mixed_bfloat16")
        'mixed_bfloat16'
    """
    validation.one_of("precision", precision, (*POLICIES, "auto"))
    if precision != "auto":
        return precision
    if tf.config.list_logical_devices("TPU"):
        return "mixed_bfloat16"
    if tf.config.list_logical_devices("GPU"):
        return "mixed_float16"
    return "float32"


def apply(model: keras.Model, precision: str) -> str:
    """Sets the dtype policy `precision` (see `resolve`) on `model` and every layer
    in it that computes in floating point; returns the policy's name.

    Examples:
        >>> import keras
        >>> from pretrainlib.training import precision
        >>> inputs = keras.Input((3,))
        >>> model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        >>> precision.apply(model, "mixed_bfloat16")
        'mixed_bfloat16'
        >>> model.layers[-1].compute_dtype, model.layers[-1].variable_dtype
        ('bfloat16', 'float32')
    """
    name = resolve(precision)
    policy = keras.dtype_policies.get(name)
    for layer in keras_compat.sublayers(model, include_self=True):
        current = layer.dtype_policy
        if (isinstance(layer, keras.layers.InputLayer)
                or current.quantization_mode is not None
                or not _is_float(current.compute_dtype)):
            continue  # inputs keep their dtype; quantized and integer layers are left be
        layer.dtype_policy = policy
    return name


def _is_float(dtype: str) -> bool:
    return dtype in ("float16", "bfloat16", "float32", "float64")
