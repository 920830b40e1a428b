"""Runs the protocol harness's checks on every registered case, in its own process.

    python harness_run.py save FOLDER      # fit, config round trip, save .keras; a
                                           # FineTuner also quantized, saved, exported
    python harness_run.py load FOLDER      # reload with safe_mode in a fresh process
    python harness_run.py mirrored FOLDER  # MirroredStrategy on 2 logical CPUs vs one

Each mode writes FOLDER/<mode>.json: `{case: {...}}`, an "error" entry for a case
that raised (the others still run).
"""

import importlib
import json
import os
import pathlib
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
mode, folder = sys.argv[1], pathlib.Path(sys.argv[2])

import tensorflow as tf  # noqa: E402

if mode == "mirrored":  # logical devices must exist before anything else touches TF
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

importlib.import_module("tensorflow_text")  # the ops of a text model's SavedModel

import harness  # noqa: E402
import pretrainlib as pl  # noqa: E402

QUANTIZATION = ("int8", "int4", "float8")


def arrays(value, prefix):
    if isinstance(value, dict):
        return {f"{prefix}{key}": np.asarray(v) for key, v in value.items()}
    return {prefix: np.asarray(value)}


def fit(model, data, epochs):
    arguments = data if isinstance(data, dict) else {"x": data}  # a dict: fit's arguments
    return model.fit(**arguments, epochs=epochs, verbose=0).history["loss"]


def save(case, index):
    model, data, epochs = harness.build(case)
    before = [v.numpy() for v in model.trainable_weights]
    losses = fit(model, data, epochs)
    moved = any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    rebuilt = type(model).from_config(model.get_config())
    piece = harness.part(case, model)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(piece))
    same_config = (type(restored) is type(piece)
                   and restored.get_config() == piece.get_config()
                   and len(rebuilt.weights) == len(model.weights))
    inputs = harness.sample_inputs(model, data)
    model.save(folder / f"{index}.keras")
    np.savez(folder / f"{index}.npz", **arrays(inputs, "in_"),
             **arrays(model.predict_on_batch(inputs), "out_"))
    result = {"losses": [float(x) for x in losses], "moved": moved, "config": same_config,
              "index": index}
    if case.split("/")[0] in harness.SERVED:  # quantized (a mode per case, in turn), exported
        mode = QUANTIZATION[index % len(QUANTIZATION)]
        if isinstance(model.adapters, pl.freezing.LoRA):  # quantized once merged
            model = pl.freezing.LoRA.merge(model)
        report = pl.compress.quantize(model, mode)
        model.save(folder / f"{index}.{mode}.keras")
        pl.hub.export(model, folder / f"{index}.{mode}.savedmodel")
        raw = harness.raw_inputs(model, inputs)  # what the export takes
        np.savez(folder / f"{index}.{mode}.npz", **arrays(raw, "raw_"),
                 **arrays(model.predict_on_batch(inputs), "out_"))
        result.update(mode=mode, quantized=len(report.quantized))
    return result


def load(case, index):
    saved = np.load(folder / f"{index}.npz")
    model = keras.saving.load_model(folder / f"{index}.keras", safe_mode=True)
    inputs = {k[3:]: saved[k] for k in saved.files if k.startswith("in_")}
    inputs = inputs.get("", inputs)
    outputs = arrays(model.predict_on_batch(inputs), "out_")
    result = {"gap": max(float(np.abs(outputs[k] - saved[k]).max()) for k in outputs),
              "part": type(harness.part(case, model)).__name__}
    if case.split("/")[0] in harness.SERVED:
        try:
            result.update(load_quantized(index, inputs))
        except Exception:  # noqa: BLE001 -- reported apart from the plain reload's result
            result["quantized_error"] = traceback.format_exc()[-3000:]
    return result


def load_quantized(index, inputs):
    mode = next(folder.glob(f"{index}.*.npz")).name.split(".")[1]
    saved = np.load(folder / f"{index}.{mode}.npz")
    expected = {k: saved[k] for k in saved.files if k.startswith("out_")}
    raw = {k[4:]: saved[k] for k in saved.files if k.startswith("raw_")}
    raw = raw.get("", raw)
    model = keras.saving.load_model(folder / f"{index}.{mode}.keras", safe_mode=True)
    exported = tf.saved_model.load(str(folder / f"{index}.{mode}.savedmodel"))

    def gap(outputs):
        outputs = arrays(outputs, "out_")
        return max(float(np.abs(outputs[k] - expected[k]).max()) for k in expected)

    return {"quantized_gap": gap(model.predict_on_batch(inputs)),
            "exported_gap": gap(exported(raw))}


def mirrored(case, index):
    # One strategy for every case: each new MirroredStrategy numbers its collective ops
    # from the same start, and two of them in one process collide.
    strategy = MIRRORED
    weights = []
    for scope in (tf.distribute.get_strategy(), strategy):
        with scope.scope():
            model, data, epochs = harness.build(case)
        losses = fit(model, data, epochs)
        weights.append([v.numpy() for v in model.weights])
    return {"difference": max(float(np.abs(a - b).max()) for a, b in zip(*weights)),
            "replicas": strategy.num_replicas_in_sync, "losses": [float(x) for x in losses]}


MIRRORED = None
if mode == "mirrored":
    MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    harness.OPTIMIZER = {"optimizer": "sgd", "learning_rate": 0.05}  # see harness.py
checks = {"save": save, "load": load, "mirrored": mirrored}[mode]
folder.mkdir(parents=True, exist_ok=True)
results = {}
only = os.environ.get("HARNESS_CASES")  # e.g. "semi/" runs the cases it prefixes
for index, case in enumerate(harness.cases()):
    if only and not case.startswith(tuple(only.split(","))):
        continue
    try:
        results[case] = checks(case, index)
    except Exception:  # noqa: BLE001 -- reported per case, the others still run
        results[case] = {"error": traceback.format_exc()[-3000:]}
(folder / f"{mode}.json").write_text(json.dumps(results, indent=1))
