"""Saving LoRA layers as they are, so that a reloaded model can go on training.

Keras saves a LoRA-enabled layer's kernel merged with its low-rank update and, when
it loads one, zeroes both factors: the loaded model computes the same, but with both
factors at zero neither gets a gradient, so fine-tuning it further changes nothing.
A model that `keep_lora_weights` was called on also writes those layers' weights
unmerged, and puts them back after Keras has loaded the layers (Keras loads a
model's private attributes after its layers: this saveable is one).
"""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib import keras_compat


def lora_layers(model: keras.Model) -> list:
    """Every LoRA-enabled layer in `model`, in order."""
    return [layer for layer in keras_compat.sublayers(model, include_self=True)
            if getattr(layer, "lora_enabled", False)]


def lora_weights(model: keras.Model) -> list:
    """The weights of every LoRA-enabled layer in `model`, in order."""
    return [v for layer in lora_layers(model) for v in layer.weights]


class _LoRAWeights(keras.layers.Layer):
    """The saveable that writes and restores `lora_weights(model)` (no weights of its
    own; it is not one of the model's layers)."""

    def __init__(self, model: keras.Model):
        super().__init__(name="lora_weights")
        self._model = lambda: model  # a function: Keras does not track the model here

    def save_own_variables(self, store):
        for i, variable in enumerate(lora_weights(self._model())):
            store[str(i)] = np.asarray(variable)

    def load_own_variables(self, store):
        variables = lora_weights(self._model())
        saved = len(store.keys()) if store is not None else 0
        if not variables:  # no LoRA here: Keras's merged kernels are what it needs
            return  # (`LoRA.merge` reads a LoRA model's weights into a plain copy)
        if saved == 0:  # a file of plain layers (or an older one): the factors Keras
            for layer in lora_layers(self._model()):  # zeroed start again as enable_lora starts
                a = layer.lora_kernel_a  # them (A random, B zero): the update can learn
                a.assign(keras.initializers.HeUniform()(a.shape, a.dtype))
            return
        if saved != len(variables):
            raise ValueError(
                f"The file holds {saved} weights of LoRA layers but this model has "
                f"{len(variables)}: it was saved from a model with other LoRA targets "
                "or rank.")
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])


def keep_lora_weights(model: keras.Model) -> None:
    """Make `model`'s saves (`save`, `save_weights`) keep its LoRA layers unmerged, and
    its loads restore them, so that training resumes the same update."""
    # Set past Keras's attribute tracking: the saveable must not become a layer of the
    # model (counted, summarized, quantized), only an attribute Keras saves.
    object.__setattr__(model, "_lora_weights", _LoRAWeights(model))
