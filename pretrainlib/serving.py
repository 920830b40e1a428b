"""A model as a SavedModel that serves raw inputs and is a TF Hub reusable SavedModel.

`write(model, path)` saves, beside the weights:

- `serving_default` (also the `serve` function): raw inputs in (strings for a text
  model with a `pl.text.TextPreprocessor`, uint8 pixels for one with a
  `pl.data.ImagePreprocessor`, the model's own inputs otherwise); the
  preprocessing runs inside the graph. A classifier gives `probabilities`,
  `class_ids` and, when the model knows them, `class_names`; other models give
  their outputs named as Keras's own export names them (`output_0` for one tensor,
  `output_0`, `output_1`, ... for a list, a dict's own keys). This is what
  TensorFlow Serving calls.
- `__call__(inputs, training=False)`, `variables`, `trainable_variables`,
  `non_trainable_variables` and `regularization_losses`: TF Hub's reusable
  SavedModel convention, so `tensorflow_hub.load(path)(inputs)` gives what the
  model gives (logits for a classifier, as `model.predict`) and its
  `trainable_variables` fine-tune in a `tf.GradientTape`.

Why not `keras.export.ExportArchive` alone: it saves endpoints and variables but
neither a `__call__` traced for both `training` values nor `regularization_losses`,
and every endpoint it writes becomes a serving signature. Lookup tables are found
as it finds them (a walk over the model's trackables).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from pretrainlib import keras_compat

__all__ = ["raw_input_signature", "write"]


def raw_input_signature(model: keras.Model):
    """The `tf.TensorSpec` (or dict of them) of the raw inputs `model` serves."""
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None and hasattr(preprocessor, "tokenizer"):
        return tf.TensorSpec([None], tf.string, name="inputs")
    if preprocessor is not None and hasattr(preprocessor, "image_size"):
        shape = tuple(getattr(getattr(model, "backbone", model), "input_shape", ()) or ())
        channels = shape[-1] if len(shape) == 4 else None
        if preprocessor.image_size is None:  # the backbone's own size, as uint8 pixels
            return tf.TensorSpec([None, *shape[1:]], tf.uint8, name="images")
        if preprocessor.channels == 3 and channels == 3:
            channels = None  # grayscale is repeated to RGB: either comes in
        # Any size (the preprocessor resizes); a grayscale model takes one channel.
        return tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")
    if preprocessor is not None:
        raise ValueError(
            f"`model.preprocessor` ({type(preprocessor).__name__}) is neither a "
            "pl.text.TextPreprocessor nor a pl.data.ImagePreprocessor: pass "
            "`input_signature=` (a tf.TensorSpec of the raw inputs it takes).")
    inputs = model.inputs if hasattr(model, "inputs") and model.inputs else None
    if inputs is None:
        raise ValueError(f"Model {model.name!r} is not built: call it once on real inputs "
                         "(or build it) before exporting.")
    specs = {t.name.split(":")[0]: tf.TensorSpec([None, *t.shape[1:]], t.dtype,
                                                 name=t.name.split(":")[0])
             for t in inputs}
    names = [t.name.split(":")[0] for t in inputs]
    if isinstance(model.input, dict):
        return {key: specs[tensor.name.split(":")[0]] for key, tensor in model.input.items()}
    return specs[names[0]] if len(names) == 1 else [specs[n] for n in names]


def _classes(model):
    task_part = getattr(model, "task_part", None)
    return getattr(task_part, "num_classes", None)


class _Exported(tf.__internal__.tracking.AutoTrackable):
    """The saved object: functions and variable lists (the model itself is not a
    child: Keras 3 layers are saved through their variables, as Keras's export does)."""


def write(model: keras.Model, path: str | os.PathLike, input_signature=None) -> str:
    """Writes `model` as a serving and TF Hub reusable SavedModel at `path` (which must
    not exist or be empty); nothing is left at `path` if any step fails. Returns the path.

    Examples:
        >>> import tempfile, numpy as np, tensorflow as tf, pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat"] * 4, [0, 1] * 4
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=30)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=8,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2), class_names=["dog", "cat"],
        ...                   preprocessor=pl.text.TextPreprocessor(tok, sequence_length=8))
        >>> path = pl.serving.write(ft, tempfile.mkdtemp() + "/model")
        >>> served = tf.saved_model.load(path).signatures["serving_default"]
        >>> out = served(tf.constant(["a small cat"]))
        >>> sorted(out), out["probabilities"].shape
        (['class_ids', 'class_names', 'probabilities'], TensorShape([1, 2]))
    """
    path = os.fspath(path)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise FileExistsError(f"`path` {path!r} exists and is not empty; pick a new one.")
    spec = input_signature if input_signature is not None else raw_input_signature(model)
    preprocessor = getattr(model, "preprocessor", None)
    num_classes = _classes(model)
    names = getattr(model, "class_names", None)

    def forward(inputs, training=False):
        x = preprocessor(inputs) if preprocessor is not None else inputs
        return model(x, training=training)

    def serve(inputs):
        outputs = forward(inputs)
        if num_classes is None or isinstance(outputs, dict):
            return _named(outputs)
        probabilities = tf.nn.softmax(tf.cast(outputs, tf.float32), axis=-1)
        result = {"probabilities": probabilities,
                  "class_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}
        if names:
            result["class_names"] = tf.gather(tf.constant(list(names)), result["class_ids"])
        return result

    root = _Exported()
    call = tf.function(forward, autograph=False)
    try:
        for training in (False, True):  # TF Hub's convention: both traces are saved
            call.get_concrete_function(spec, training=training)
        root.serve = tf.function(serve, input_signature=[spec], autograph=False)
        signature = root.serve.get_concrete_function()
    except (TypeError, ValueError, tf.errors.OpError, NotImplementedError) as error:
        what = "`model.preprocessor`" if preprocessor is not None else f"model {model.name!r}"
        raise ValueError(
            f"{what} could not be traced on {spec}: {error}. A preprocessor must be made "
            "of TensorFlow ops (pl.text.TextPreprocessor, pl.data.ImagePreprocessor) or "
            "pass `input_signature=` matching the raw inputs it takes.") from error
    root.__call__ = call
    root.variables = [v.value for v in model.variables]
    root.trainable_variables = [v.value for v in model.trainable_variables]
    root.non_trainable_variables = [v.value for v in model.non_trainable_variables]
    root.regularization_losses = _regularization_losses(model)
    root._misc_assets = _resources(model)  # lookup tables (vocabularies), if any

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(root, staging, signatures={"serving_default": signature})
        if os.path.isdir(path):
            os.rmdir(path)  # empty, checked above
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _named(outputs) -> dict:
    """Outputs keyed as `keras.Model.export` keys them, so a signature reads the same
    whichever of the two wrote it."""
    if isinstance(outputs, dict):
        return outputs
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": output for i, output in enumerate(outputs)}
    return {"output_0": outputs}


def _regularization_losses(model):
    """One argument-less tf.function per weight regularizer, as TF Hub expects."""
    losses = []
    for layer in keras_compat.sublayers(model):
        for attribute in ("kernel_regularizer", "bias_regularizer", "embeddings_regularizer"):
            regularizer = getattr(layer, attribute, None)
            weight = getattr(layer, attribute.split("_")[0], None)
            if regularizer is not None and weight is not None:
                losses.append(tf.function(_penalty(regularizer, weight), input_signature=[]))
    for loss in losses:
        loss.get_concrete_function()
    return losses


def _penalty(regularizer, weight):
    return lambda: tf.cast(regularizer(weight), tf.float32)


def _resources(model):
    """The TrackableResources (lookup tables) under `model`, found as Keras's export
    finds them."""
    from tensorflow.saved_model.experimental import TrackableResource

    found = []
    for trackable in tf.train.TrackableView(model).descendants():
        if isinstance(trackable, TrackableResource):
            found.append(trackable)
    return found
