"""Read a backbone's inputs and outputs the same way for every objective.

Backbones of this library return dicts (`pooled_output`, `sequence_output`,
`feature_map`); `keras.applications` models and plain Keras models return one
tensor. These helpers find what an objective needs in either, or say why not.
"""

from __future__ import annotations

import keras


def model_input(model: keras.Model):
    """`model.input`, also for a `keras.Sequential` never called (whose `.input`
    raises in Keras 3 although its `inputs` are known); None if it has no input."""
    try:
        return model.input
    except AttributeError:
        inputs = getattr(model, "inputs", None)
        if not inputs:
            return None
        return inputs[0] if len(inputs) == 1 else inputs


def call_inputs(backbone: keras.Model, pairs: bool = False):
    """`(inputs, call)`: the inputs a model around `backbone` takes, and what it calls
    the backbone with.

    Usually both are the backbone's own inputs. Text backbones from KerasHub
    (`BertBackbone` and kin) differ from what `pl.data.text_dataset` yields in two ways,
    bridged here inside the graph so that fit, evaluate, predict and saved models agree:
    they also take `segment_ids`, which single-segment text gets as zeros; and they
    read `padding_mask` as 0/1 (a value of 2 would flip the attention mask), so the
    document ids of packed rows become 1 there — packed documents then see each
    other, as in RoBERTa's pretraining; `pl.backbones.TextEncoder` keeps them apart.
    With `pairs=True` the model takes `segment_ids` from the data instead
    (`pl.data.text_dataset(..., pairs=...)`).

    Examples:
        >>> import keras_hub, pretrainlib as pl
        >>> bert = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1,
        ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
        >>> inputs, call = pl.backbones.outputs.call_inputs(bert)
        >>> sorted(inputs), sorted(call)
        (['padding_mask', 'token_ids'], ['padding_mask', 'segment_ids', 'token_ids'])
    """
    inputs = model_input(backbone)
    is_text = isinstance(inputs, dict) and "token_ids" in inputs
    if pairs and not (is_text and "segment_ids" in inputs):
        raise ValueError(
            "`pairs=True` needs a backbone that takes `segment_ids` (e.g. KerasHub's "
            f"BertBackbone). Received: backbone={backbone.name!r} with inputs "
            f"{sorted(inputs) if isinstance(inputs, dict) else inputs}"
        )
    if not is_text:
        return inputs, inputs
    given = {name: tensor for name, tensor in inputs.items()
             if name != "segment_ids" or pairs}
    call = dict(given)
    if "segment_ids" in inputs and not pairs:
        call["segment_ids"] = keras.ops.zeros_like(inputs["token_ids"])
    if "padding_mask" in inputs and not getattr(backbone, "reads_document_ids", False):
        call["padding_mask"] = keras.ops.minimum(
            keras.ops.cast(inputs["padding_mask"], "int32"), 1)
    return given, call


def is_causal(backbone: keras.Model) -> bool:
    """Whether `backbone` attends causally (no position sees a later one): this
    library's `TextEncoder(causal=True)`, or a KerasHub decoder-only backbone (the
    backbone of one of KerasHub's causal LMs: GPT-2, Llama, Mistral, Gemma, ...).

    Examples:
        >>> import keras_hub, pretrainlib as pl
        >>> gpt2 = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=1,
        ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
        >>> pl.backbones.outputs.is_causal(gpt2)
        True
    """
    if getattr(backbone, "causal", False):
        return True
    return isinstance(backbone, _keras_hub_decoders())


def _keras_hub_causal_lms() -> list:
    """KerasHub's causal-LM task classes with a backbone class (an encoder-decoder's
    `Seq2SeqLM` is not one)."""
    import keras_hub

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return [task for task in subclasses(keras_hub.models.CausalLM)
            if getattr(task, "backbone_cls", None) is not None
            and not issubclass(task, keras_hub.models.Seq2SeqLM)]


def _keras_hub_decoders() -> tuple:
    """KerasHub's decoder-only backbone classes, read off its causal-LM tasks."""
    return tuple({task.backbone_cls for task in _keras_hub_causal_lms()})


def keras_hub_causal_lm(backbone: keras.Model):
    """The KerasHub `CausalLM` task class made for `backbone`'s class (e.g.
    `GPT2CausalLM` for a `GPT2Backbone`); a `ValueError` if there is none."""
    for task in _keras_hub_causal_lms():
        if type(backbone) is task.backbone_cls:
            return task
    raise ValueError(f"KerasHub has no causal LM for {type(backbone).__name__}.")


def sequence_features(outputs, backbone: keras.Model):
    """`[batch, seq, features]`: `sequence_output` from a dict, or a rank-3 tensor."""
    if isinstance(outputs, dict) and "sequence_output" in outputs:
        return outputs["sequence_output"]
    if not isinstance(outputs, dict) and len(outputs.shape) == 3:
        return outputs
    described = sorted(outputs) if isinstance(outputs, dict) else outputs.shape
    raise ValueError(
        f"Backbone {backbone.name!r} must return token features: a dict with "
        f"'sequence_output' or a tensor [batch, sequence, features]. Received: {described}"
    )


def token_inputs(backbone: keras.Model, objective: str, example: str) -> dict:
    """The backbone's dict of inputs; raises unless it takes `token_ids`."""
    inputs = model_input(backbone)
    if not isinstance(inputs, dict) or "token_ids" not in inputs:
        raise ValueError(
            f"{objective} needs a text backbone that takes `token_ids` (e.g. {example}). "
            f"Received: backbone={backbone.name!r} with inputs "
            f"{getattr(inputs, 'shape', inputs)}"
        )
    return inputs


def check_causal_lm(backbone: keras.Model, who: str, tied: bool = True) -> None:
    """Raises unless `backbone` can learn next-token prediction: it takes `token_ids`,
    attends causally and (with `tied` output weights) has a `token_embedding`."""
    token_inputs(backbone, who, "pl.backbones.TextEncoder(..., causal=True)")
    if not is_causal(backbone):
        raise ValueError(
            f"{who} needs causal self-attention, or every position would see the "
            "token it must predict: a KerasHub decoder (e.g. GPT2Backbone) or "
            "pl.backbones.TextEncoder(..., causal=True). Received: "
            f"{backbone.name!r} ({type(backbone).__name__}) without causal attention.")
    if tied and getattr(backbone, "token_embedding", None) is None:
        raise ValueError(
            f"{who} ties its output layer to `token_embedding`; {backbone.name!r} has "
            "none." + (" Pass `tie_weights=False`." if who == "CausalLM" else ""))


def single_input(backbone: keras.Model, objective: str):
    """The backbone's one input tensor; raises if it takes a dict (e.g. token ids)."""
    inputs = model_input(backbone)
    if inputs is None or isinstance(inputs, (dict, list, tuple)):
        described = sorted(inputs) if isinstance(inputs, dict) else inputs
        raise ValueError(
            f"{objective} needs a backbone with one input tensor (images "
            f"[batch, height, width, channels] or vectors [batch, features]). Received: "
            f"backbone={backbone.name!r} with inputs {described}"
        )
    return inputs


def image_input(backbone: keras.Model, objective: str):
    """The backbone's float image input `[batch, h, w, c]` with a known h, w, c."""
    inputs = single_input(backbone, objective)
    if len(inputs.shape) != 4 or None in inputs.shape[1:] or "int" in str(inputs.dtype):
        raise ValueError(
            f"{objective} needs an image backbone: float input [batch, height, width, "
            f"channels] with known sizes (e.g. pl.backbones.ConvNet). Received: "
            f"backbone={backbone.name!r} with input shape {inputs.shape}, dtype {inputs.dtype}"
        )
    return inputs


def pooled_features(outputs):
    """`[batch, features]`: `pooled_output`, or a plain tensor (spatial axes averaged)."""
    if isinstance(outputs, dict):
        if "pooled_output" not in outputs:
            raise ValueError(
                f"The backbone returns {sorted(outputs)} but no 'pooled_output'."
            )
        return outputs["pooled_output"]
    if len(outputs.shape) == 4:
        return keras.layers.GlobalAveragePooling2D(name="pool")(outputs)
    if len(outputs.shape) == 2:
        return outputs
    raise ValueError(
        "The backbone's output must be features [batch, features] or a feature map "
        f"[batch, height, width, channels]. Received: output shape {outputs.shape}"
    )


def feature_map(outputs):
    """`[batch, h, w, c]`: `feature_map` from a dict, or a plain rank-4 tensor; else None."""
    if isinstance(outputs, dict):
        return outputs.get("feature_map")
    return outputs if len(outputs.shape) == 4 else None
