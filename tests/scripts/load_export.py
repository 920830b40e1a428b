"""Loads pl.hub.export SavedModels in a fresh process, as a serving program would.

    python load_export.py FOLDER     # FOLDER/cases.json names the exports and inputs

For each case writes FOLDER/<name>.out.npz: the `serving_default` outputs, TF Hub's
`hub.load(path)(inputs)`, and the loss before and after three SGD steps on
`trainable_variables` in a GradientTape.
"""

import importlib
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_hub as hub  # noqa: E402
importlib.import_module("tensorflow_text")  # registers the tokenizer's ops

folder = pathlib.Path(sys.argv[1])
for name, case in json.loads((folder / "cases.json").read_text()).items():
    data = np.load(folder / f"{name}.in.npz")
    inputs = tf.constant(data["inputs"])
    labels = tf.constant(data["labels"]) if "labels" in data.files else None
    served = tf.saved_model.load(case["path"]).signatures["serving_default"](inputs)
    layer = hub.load(case["path"])
    outputs = {f"serve_{key}": (value.numpy().astype(str) if value.dtype == tf.string
                                else value.numpy()) for key, value in served.items()}
    outputs["call"] = layer(inputs, training=False).numpy()
    if labels is not None:  # fine-tunes as TF Hub's reusable SavedModels promise
        def loss():
            logits = layer(inputs, training=True)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        losses = []
        for _ in range(3):
            with tf.GradientTape() as tape:
                value = loss()
            gradients = tape.gradient(value, layer.trainable_variables)
            for variable, gradient in zip(layer.trainable_variables, gradients):
                if gradient is not None:
                    variable.assign_sub(0.5 * tf.convert_to_tensor(gradient))
            losses.append(float(value))
        losses.append(float(loss()))
        outputs["losses"] = np.array(losses)
        outputs["gradients"] = np.array(sum(g is not None for g in gradients))
        outputs["trainable"] = np.array(len(layer.trainable_variables))
    outputs["regularization"] = np.array([float(f()) for f in layer.regularization_losses])
    outputs["variables"] = np.array(len(layer.variables))
    np.savez(folder / f"{name}.out.npz", **outputs)
