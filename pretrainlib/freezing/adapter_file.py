"""A FineTuner's trained part alone in a small file: the transform's weights (LoRA
updates, adapter layers, BitFit's biases) and the head, without the frozen base.

One base serves many tasks this way, as PEFT's adapter checkpoints and KerasHub's
`save_lora_weights` do: ship the base once, then a file per task a few percent of
its size. The file is HDF5 (what Keras's weight files are): a dataset per weight,
named `backbone/<variable path>` or `head/<path inside the head>`, and as
attributes the transform and head that wrote it, the class names, and a
fingerprint of every base weight so a different base is noticed.

Why not `keras.Model.save_weights`: it writes every weight of the model (the base
too), and reading it back matches weights by position, so a base of another shape
fails deep inside h5py instead of naming the layer.
"""

from __future__ import annotations

import json
import os
import warnings

import h5py
import keras
import numpy as np

FORMAT = "pretrainlib.adapters/1"
# Layers whose running statistics change with their trainable scale and offset.
_STATISTICS = ("moving_mean", "moving_variance")


def trained_weights(model) -> dict:
    """`{key: variable}` of what `model` (a FineTuner) can train, with the running
    statistics of BatchNormalization layers that train."""
    candidates = model.trainable_candidates
    head = {id(v) for v in model.head.weights}
    chosen = {id(v) for v in model.weights if id(v) in candidates}
    for layer in _sublayers(model.backbone):
        if isinstance(layer, keras.layers.BatchNormalization) and any(
                id(v) in candidates for v in layer.weights):
            chosen |= {id(v) for v in layer.weights if v.name in _STATISTICS}
    weights = {}
    for variable in model.weights:
        if id(variable) not in chosen:
            continue
        key = _key(variable, model.head.name if id(variable) in head else None)
        if key in weights:
            raise ValueError(
                f"Two weights of {model.name!r} have the path {key!r}; rename one of "
                "their layers so that the adapter file can tell them apart.")
        weights[key] = variable
    return weights


def save(model, path) -> str:
    """Writes `model`'s trained part to `path` (HDF5); nothing is left on failure."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"`path` {path!r}: the folder {folder!r} does not exist.")
    weights = trained_weights(model)
    staging = f"{path}.partial"
    try:
        with h5py.File(staging, "w") as file:
            for key, variable in weights.items():
                file.create_dataset(key, data=variable.numpy())
            file.attrs["format"] = FORMAT
            file.attrs["adapters"] = json.dumps(_described(model.adapters))
            file.attrs["head"] = json.dumps(_described(model.head))
            file.attrs["class_names"] = json.dumps(model.class_names)
            file.attrs["base"] = json.dumps(_fingerprints(model, weights))
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.remove(staging)
        raise
    return path


def load(model, path) -> None:
    """Reads a file `save` wrote into `model`, after checking every weight: a
    transform, head or base of another shape fails naming it and changes nothing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` {path!r} is not a file; pass the file "
                                "`save_adapters` wrote.")
    try:
        with h5py.File(path, "r") as file:
            stored = {}

            def read(key, item):  # returns None: h5py stops at the first other value
                if isinstance(item, h5py.Dataset):
                    stored[key] = item[()]

            file.visititems(read)
            attrs = {key: file.attrs[key] for key in file.attrs}
    except OSError as error:
        raise ValueError(f"`path` {path!r} is not an adapter file (HDF5): {error}") from None
    if attrs.get("format") != FORMAT:
        raise ValueError(f"`path` {path!r} is not an adapter file written by "
                         f"`save_adapters` (format {attrs.get('format')!r}).")
    _check_same("adapters", json.loads(attrs["adapters"]), _described(model.adapters))
    _check_same("head", json.loads(attrs["head"]), _described(model.head))
    weights = trained_weights(model)
    missing = sorted(set(weights) - set(stored))
    extra = sorted(set(stored) - set(weights))
    if extra:
        raise ValueError(
            f"The adapter file has weights this model does not train, first "
            f"{_layer(extra[0])!r} ({extra[0]}): the base or the transform differs from "
            "the one the file was trained on. Build the FineTuner on the same base, with "
            f"the same `adapters` and `policy`. Not in this model: {extra[:5]}")
    if missing:
        raise ValueError(
            f"This model trains weights the adapter file lacks, first {_layer(missing[0])!r} "
            f"({missing[0]}): the base or the transform differs from the one the file "
            f"was trained on. Not in the file: {missing[:5]}")
    for key, variable in weights.items():
        if tuple(stored[key].shape) != tuple(variable.shape):
            raise ValueError(
                f"Layer {_layer(key)!r} of this model has weight {key!r} of shape "
                f"{tuple(variable.shape)}, the adapter file {tuple(stored[key].shape)}: the "
                "base has other shapes than the one the adapters were trained on.")
    names = json.loads(attrs.get("class_names", "null"))
    if names is not None:
        model._adopt_class_names("path", names)
    for key, variable in weights.items():
        variable.assign(stored[key].astype(variable.dtype))
    _warn_if_base_differs(model, weights, json.loads(attrs.get("base", "{}")))


def _sublayers(layer):
    from pretrainlib import keras_compat  # leaf module; imported here to keep this one light

    return keras_compat.sublayers(layer, include_self=True)


def _key(variable, head_name: str | None) -> str:
    if head_name is None:
        return f"backbone/{variable.path}"
    inside = variable.path.split("/", 1)[1] if variable.path.startswith(
        f"{head_name}/") else variable.path
    return f"head/{inside}"


def _layer(key: str) -> str:
    return key.split("/", 1)[1].rsplit("/", 1)[0]


def _described(obj) -> dict | None:
    if obj is None:
        return None
    config = obj.get_config()
    config.pop("name", None)  # a head's unique name differs between builds
    config.pop("dtype", None)  # a float policy or a quantized one: same weights here
    return {"class": type(obj).__name__, "config": config}


def _check_same(name: str, stored, current) -> None:
    if stored != current:
        def show(d):
            return "None" if d is None else f"{d['class']}({d['config']})"
        raise ValueError(
            f"The adapter file was written by a FineTuner with {name}={show(stored)}; this "
            f"one has {name}={show(current)}. Build it with the same `{name}`.")


def _fingerprints(model, trained: dict) -> dict:
    """`{path: [mean, root mean square]}` of every backbone weight the file leaves out."""
    ids = {id(v) for v in trained.values()}
    return {v.path: _moments(v) for v in model.backbone.weights
            if id(v) not in ids and v.dtype.startswith(("float", "bfloat"))}


def _moments(variable) -> list:
    values = np.asarray(variable.numpy(), np.float64)
    return [float(values.mean()), float(np.sqrt((values ** 2).mean()))] if values.size else [0, 0]


def _warn_if_base_differs(model, trained: dict, stored: dict) -> None:
    current = _fingerprints(model, trained)
    differ = [path for path, moments in stored.items()
              if path in current and not np.allclose(current[path], moments,
                                                      rtol=1e-3, atol=1e-6)]
    if differ:
        warnings.warn(
            f"{len(differ)} base weights differ from those the adapters were trained on "
            f"(first: {differ[:3]}): the outputs will not be the trained model's unless "
            "this is the same base.", stacklevel=3)
