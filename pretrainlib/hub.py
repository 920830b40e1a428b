"""Backbones from the TensorFlow ecosystem, fine-tunable on Keras 3; export back.

`load_backbone` reads a `.keras` file, a KerasHub preset directory, a SavedModel
directory (written by Keras 3's `model.export`, by `pl.hub.export`, or a TF2
`tf.Module` with a serving signature, as TF Hub modules are) or a remote TF Hub /
Kaggle URL, and returns a `keras.Model` that `FineTuner` trains with any policy.

Why our own SavedModel layer: tensorflow-hub 0.16's `hub.KerasLayer` is a tf-keras
layer that a Keras 3 model cannot hold (tensorflow/hub#903), and Keras 3's
`TFSMLayer(trainable=True)` names its variables after the SavedModel's (`dense/kernel:0`),
which optimizers cannot build slots for. `SavedModelLayer` tracks the SavedModel's own
variables (so gradients reach the weights its functions read) under clean names.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import keras_compat

__all__ = ["FORMATS", "SavedModelLayer", "export", "load_backbone"]

_REMOTE = ("http://", "https://", "gs://")
# TF Hub-style modules (and pl.hub.export's, whose `__call__` gives the model's own
# outputs where `serve` gives a classifier's probabilities), then Keras 3 exports.
_ENDPOINTS = ("__call__", "serve")


@keras.saving.register_keras_serializable(package="pretrainlib")
class SavedModelLayer(keras.layers.Layer):
    """A Keras 3 layer that calls a SavedModel's function and trains its variables.

    Args:
        handle: a SavedModel directory, or a remote URL (read with `tensorflow_hub`).
        endpoint: the function to call: an attribute of the loaded object
            (`"__call__"` of a TF Hub module or a `pl.hub.export`, `"serve"` of a Keras
            export) or a signature name (`"serving_default"`). Default: the first of
            those that exists.
        trainable: whether the SavedModel's trainable variables train.

    Examples:
        >>> import tempfile, keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        >>> path = tempfile.mkdtemp() + "/dense"
        >>> model.export(path, verbose=False)
        >>> layer = pl.hub.SavedModelLayer(path)
        >>> x = np.ones((2, 4), "float32")
        >>> bool(np.allclose(layer(x), model(x), atol=1e-6)), len(layer.trainable_weights)
        (True, 2)
    """

    def __init__(self, handle: str, endpoint: str | None = None, trainable: bool = True,
                 **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        self.handle = str(handle)
        self._loaded = _load_saved_model(self.handle)  # keeps the functions' resources alive
        self.endpoint, self._function, self._is_signature = _endpoint(
            self._loaded, endpoint, self.handle)
        trainable_vars, other_vars = keras_compat.saved_model_variables([self._function])
        seen = set()
        for variable in [*trainable_vars, *other_vars]:
            name = variable.name.split(":")[0].replace("/", "_")
            while name in seen:  # names must be unique for the optimizer's slots
                name += "_"
            seen.add(name)
            # A Keras variable made from a tf.Variable wraps that very variable, so
            # the function's reads and the optimizer's writes meet.
            keras_compat.track_variable(self, keras.Variable(variable, trainable=variable.trainable,
                                                dtype=variable.dtype, name=name))
        self.built = True

    @property
    def input_signature(self):
        """The endpoint's inputs: a `tf.TensorSpec` or a dict of them."""
        if self._is_signature:
            return dict(self._function.structured_input_signature[1])
        # `_endpoint` takes only functions with a saved trace: read the first one's.
        traced = self._function._list_all_concrete_functions_for_serialization()[0]
        args, _ = traced.structured_input_signature
        args = [a for a in args if not isinstance(a, (bool, type(None)))]  # `training`
        return args[0] if len(args) == 1 else list(args)

    def call(self, inputs):
        if not self._is_signature:
            return self._function(inputs)
        names = list(self._function.structured_input_signature[1])
        return dict(self._function(**(inputs if isinstance(inputs, dict)
                                      else {names[0]: inputs})))  # signatures give dicts

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "endpoint": self.endpoint}


def load_backbone(handle: str | os.PathLike, trainable: bool = True,
                  endpoint: str | None = None) -> keras.Model:
    """A fine-tunable Keras 3 backbone from a file, a directory or a remote handle.

    Args:
        handle: one of
            - a `.keras` file (a Pretrainer or FineTuner gives its backbone);
            - a KerasHub preset directory (`config.json`, as `save_to_preset` writes);
            - a SavedModel directory: `model.export(...)` (Keras 3), `pl.hub.export`,
              or a TF2 `tf.Module` saved with a serving signature, as TF Hub's;
            - an `https://` TF Hub or Kaggle handle, which alone reaches the network
              (cached by `tensorflow_hub` in `TFHUB_CACHE_DIR`).
        trainable: whether the backbone's weights train (a FineTuner policy then
            decides which groups train when).
        endpoint: for SavedModels, the function to call (see `SavedModelLayer`).

    Returns:
        A `keras.Model`; SavedModels come as one `SavedModelLayer` with the
        SavedModel's inputs.

    Examples:
        >>> import tempfile, keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        >>> path = tempfile.mkdtemp() + "/dense.keras"
        >>> model.save(path)
        >>> backbone = pl.hub.load_backbone(path, trainable=False)
        >>> len(backbone.trainable_weights), len(backbone.weights)
        (0, 2)
    """
    text = os.fspath(handle) if isinstance(handle, (str, os.PathLike)) else None
    if text is None:
        raise TypeError(
            "`handle` must be a path or URL string (a .keras file, a SavedModel or "
            f"KerasHub preset directory, or https://...). Received: {type(handle).__name__}")
    if text.startswith(_REMOTE):
        model = _saved_model_backbone(text, endpoint)
    else:
        path = pathlib.Path(text)
        if path.suffix == ".keras" and path.is_file():
            model = keras.saving.load_model(path)
            model = getattr(model, "backbone", model)
        elif (path / "saved_model.pb").is_file():
            model = _saved_model_backbone(text, endpoint)
        elif (path / "config.json").is_file():
            import keras_hub  # imported only for presets

            model = keras_hub.models.Backbone.from_preset(text)
        else:
            raise FileNotFoundError(
                f"`handle` {text!r} is not a .keras file, a SavedModel directory "
                "(saved_model.pb) or a KerasHub preset directory (config.json). Remote "
                "handles must start with https://.")
    model.trainable = bool(trainable)
    return model


FORMATS = ("tf_saved_model", "litert", "onnx", "openvino")
"""The formats `export` writes: a SavedModel (the default), or Keras's LiteRT, ONNX
and OpenVINO exports."""


def export(model: keras.Model, path: str | os.PathLike, format: str = "tf_saved_model",
           input_signature=None) -> str:
    """Writes `model` (a FineTuner, a Pretrainer's backbone, any built Keras model)
    for serving; returns the path. Nothing is left at `path` if it fails.

    `format="tf_saved_model"` (default) writes a SavedModel (see `pl.serving`):

    - its `serving_default` signature takes raw inputs when the model has a
      preprocessor (strings for `pl.text.TextPreprocessor`, tokenized inside the
      graph; uint8 images of any size for `pl.data.ImagePreprocessor`) and gives a
      classifier's `probabilities`, `class_ids` and `class_names`; TensorFlow
      Serving calls it as it is;
    - it is a TF Hub reusable SavedModel: `tensorflow_hub.load(path)(inputs,
      training=False)` gives what the model gives (a classifier's logits), with
      `variables`, `trainable_variables` (fine-tune them in a `tf.GradientTape`)
      and `regularization_losses`;
    - `pl.hub.load_backbone(path)` reads it back.

    A text model's SavedModel uses TensorFlow Text's ops: `import tensorflow_text`
    before `tf.saved_model.load` in another program.

    `format="litert"` (a `.tflite` file), `"onnx"` or `"openvino"` are Keras's own
    exports of the model on the inputs its backbone takes (token ids, scaled
    pixels): run `model.preprocessor` before it (on-device tokenizers are not TF
    ops). `"onnx"` needs `tf2onnx` (`pip install ".[onnx]"` in the clone, which brings
    ONNX Runtime too) and `"openvino"` needs `openvino` installed.

    Args:
        model: a built `keras.Model`.
        path: a new (or empty) directory; for `"litert"` a file.
        format: one of `"tf_saved_model"`, `"litert"`, `"onnx"`, `"openvino"`.
        input_signature: the raw inputs' `tf.TensorSpec`, for a preprocessor of
            your own (SavedModel only).

    Examples:
        >>> import tempfile, keras, numpy as np, pretrainlib as pl
        >>> inputs = keras.Input((4,))
        >>> model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        >>> path = pl.hub.export(model, tempfile.mkdtemp() + "/exported")
        >>> x = np.ones((2, 4), "float32")
        >>> bool(np.allclose(pl.hub.load_backbone(path)(x), model(x), atol=1e-6))
        True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model (a FineTuner, or e.g. `pretrainer.backbone`). "
            f"Received: {type(model).__name__}")
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {list(FORMATS)}. Received: format={format!r}")
    path = os.fspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise FileExistsError(f"`path` {path!r} exists and is not empty; pick a new one.")
    if format == "tf_saved_model":
        from pretrainlib import serving  # imported here: serving imports nothing of hub

        return serving.write(model, path, input_signature=input_signature)
    if input_signature is not None:
        raise ValueError(f"`input_signature` is for format='tf_saved_model'; format="
                         f"{format!r} exports the model on its own inputs.")
    if format == "onnx":
        try:
            from pretrainlib import onnx_compat

            onnx_compat.register()
        except ImportError:
            raise ImportError("format='onnx' needs tf2onnx: `pip install tf2onnx "
                              "onnxruntime` (or `pip install \".[onnx]\"` in a clone of "
                              "pretrainlib).") from None
    try:
        _call_once(model)  # Keras's ONNX export refuses a model never called
        model.export(path, format=format, verbose=False)
    except BaseException:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)
        raise
    return path


def _call_once(model: keras.Model) -> None:
    """Calls `model` on one example of zeros shaped like its inputs."""
    if not model.inputs:
        return  # a subclassed model: Keras's export reads what it was called on

    def zeros(tensor):
        shape = [1] + [d or 1 for d in tensor.shape[1:]]
        return np.zeros(shape, tensor.dtype)

    inputs = model.input
    model(keras.tree.map_structure(zeros, inputs), training=False)


def _load_saved_model(handle: str):
    if handle.startswith(_REMOTE):
        import tensorflow_hub as hub  # network only for a handle the user named

        return hub.load(handle)
    return tf.saved_model.load(handle)


def _endpoint(loaded, endpoint: str | None, handle: str):
    """(name, function, is_signature) of the function to call."""
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    functions = {name: getattr(loaded, name) for name in _ENDPOINTS
                 if _is_traced(getattr(loaded, name, None))}
    if endpoint is None:
        for name in _ENDPOINTS:
            if name in functions:
                return name, functions[name], False
        if signatures:
            name = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
            return name, signatures[name], True
    elif endpoint in signatures:
        return endpoint, signatures[endpoint], True
    elif _is_traced(getattr(loaded, endpoint, None)):
        return endpoint, getattr(loaded, endpoint), False
    raise ValueError(
        f"The SavedModel at {handle!r} has no endpoint {endpoint or 'to call'!r}. "
        f"Functions: {sorted(functions)}; signatures: {sorted(signatures)}. "
        "Pass one as `endpoint=`.")


def _is_traced(function) -> bool:
    """A restored tf.function with at least one concrete (saved) trace."""
    concrete = getattr(function, "_list_all_concrete_functions_for_serialization", None)
    return bool(concrete and concrete())


def _saved_model_backbone(handle: str, endpoint: str | None) -> keras.Model:
    layer = SavedModelLayer(handle, endpoint=endpoint, name="saved_model")
    spec = layer.input_signature
    if isinstance(spec, dict) and len(spec) == 1:
        spec = next(iter(spec.values()))  # a signature with one input takes a tensor
    if isinstance(spec, dict):
        inputs = {name: keras.Input(s.shape[1:], dtype=s.dtype.name, name=name)
                  for name, s in spec.items()}
    elif isinstance(spec, tf.TensorSpec):
        inputs = keras.Input(spec.shape[1:], dtype=spec.dtype.name, name=spec.name or "inputs")
    else:
        raise ValueError(
            f"The SavedModel at {handle!r} takes {spec!r}; load_backbone handles one "
            "tensor or a dict of tensors. Wrap it with pl.hub.SavedModelLayer yourself.")
    return keras.Model(inputs, layer(inputs), name="saved_model_backbone")
