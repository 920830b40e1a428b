"""What Keras's ONNX export (through `tf2onnx`) needs to convert this library's models.

TensorFlow 2.21 computes the exact GELU of every transformer block as
`0.5 * x * erfc(-x / sqrt(2))`, and `tf2onnx` has no conversion for `Erfc`: the
export writes a file that ONNX Runtime refuses ("No Op registered for Erfc").
`register()` adds one, `erfc(x) = 1 - erf(x)` with ONNX's own `Erf` (opset 9 and
later). Where erfc is tiny (x > 4) the difference is rounding below 1e-7, and GELU
multiplies it by 0.5 * x of the other sign, so the outputs agree to float32 rounding.
"""

from __future__ import annotations

import numpy as np

_registered = False


def register() -> None:
    """Registers the `Erfc` conversion with `tf2onnx` (once; imports it)."""
    global _registered
    if _registered:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 -- registered by the decorator
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, dtype))
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name, name="erf")
            shapes, dtypes = node.output_shapes, node.output_dtypes
            ctx.remove_node(node.name)
            ctx.make_node("Sub", [one.output[0], erf.output[0]], outputs=[node.output[0]],
                          name=node.name, shapes=shapes, dtypes=dtypes)

    _registered = True
