"""pl.hub.export of whole models: raw strings and raw pixels in, the same probabilities
as `predict` out, in a fresh process through `tf.saved_model.load` and
`tensorflow_hub.load`; the TF Hub object fine-tunes in a GradientTape; LiteRT gives
the same outputs; bad arguments fail before anything is written."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "load_export.py"


def softmax(logits):
    return tf.nn.softmax(logits).numpy()


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    wordnet = pl.datasets.wordnet_supersenses()
    texts, labels = list(wordnet.train.texts[:64]), list(wordnet.train.labels[:64])
    tokenizer = pl.text.WordPieceTokenizer.train(texts, vocab_size=200)
    keras.utils.set_random_seed(0)
    encoder = pl.backbones.TextEncoder(tokenizer.vocab_size, num_layers=1, hidden_dim=16,
                                       num_heads=2, max_sequence_length=16)
    ft = pl.FineTuner(encoder, pl.heads.Classifier(6), policy=pl.freezing.FullFineTune(),
                      preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=16),
                      class_names=list(wordnet.class_names))
    ft.compile(learning_rate=3e-3)
    ft.fit(texts, labels, epochs=2, verbose=0)
    return ft, np.array(texts[:8]), np.array(labels[:8], "int32")


@pytest.fixture(scope="module")
def image_model():
    part = pl.datasets.fashion_mnist().train.sample(64, seed=0)
    keras.utils.set_random_seed(0)
    net = pl.backbones.ConvNet(widths=(4, 8))
    ft = pl.FineTuner(net, pl.heads.Classifier(10), policy=pl.freezing.FullFineTune(),
                      preprocessor=pl.data.ImagePreprocessor.for_backbone(net))
    ft.compile(learning_rate=3e-3)
    ft.fit(part.images, part.labels, epochs=1, verbose=0)
    return ft, part.images[:8, :, :, None], np.asarray(part.labels[:8], "int32")


def regularized_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.slow
def test_exports_serve_raw_inputs_and_fine_tune_as_tf_hub_modules(text_model, image_model,
                                                                    tmp_path):
    cases, expected = {}, {}
    regularized = regularized_model()
    models = {"text": text_model, "image": image_model,
              "plain": (regularized, np.ones((2, 3), "float32"), None)}
    for name, (model, inputs, labels) in models.items():
        path = pl.hub.export(model, tmp_path / name)
        cases[name] = {"path": str(path)}
        np.savez(tmp_path / f"{name}.in.npz", inputs=inputs,
                 **({} if labels is None else {"labels": labels}))
        expected[name] = model.predict(inputs, verbose=0)
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    out = {name: np.load(tmp_path / f"{name}.out.npz") for name in cases}

    for name in ("text", "image"):
        got = out[name]
        np.testing.assert_allclose(got["serve_probabilities"], softmax(expected[name]),
                                   atol=1e-5)
        np.testing.assert_array_equal(got["serve_class_ids"], expected[name].argmax(-1))
        np.testing.assert_allclose(got["call"], expected[name], atol=1e-5)  # logits
        # TF Hub's reusable SavedModel: every trainable variable gets a gradient and
        # three steps lower the loss.
        assert got["gradients"] == got["trainable"] > 0
        assert got["losses"][-1] < got["losses"][0]
    names = np.array(text_model[0].class_names)[expected["text"].argmax(-1)]
    assert list(out["text"]["serve_class_names"]) == list(names)
    assert "serve_class_names" not in out["image"]  # no names given: ids only
    np.testing.assert_allclose(out["plain"]["call"], expected["plain"], atol=1e-6)
    # A model without classes serves its outputs under Keras's export's key.
    np.testing.assert_allclose(out["plain"]["serve_output_0"], expected["plain"], atol=1e-6)
    kernel = regularized.layers[-1].kernel.numpy()
    np.testing.assert_allclose(out["plain"]["regularization"], [0.1 * (kernel ** 2).sum()],
                               rtol=1e-5)
    # The whole model reads back as a backbone too (its logits as outputs).
    loaded = pl.hub.load_backbone(tmp_path / "image")
    np.testing.assert_allclose(loaded(image_model[1]), expected["image"], atol=1e-5)


def run_litert(path, inputs):
    runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
    names = list(runner.get_input_details())
    feed = inputs if isinstance(inputs, dict) else {names[0]: inputs}
    return next(iter(runner(**{name: np.asarray(feed[name]) for name in names}).values()))


def run_onnx(path, inputs):
    import onnxruntime

    session = onnxruntime.InferenceSession(path)
    names = [spec.name for spec in session.get_inputs()]
    feed = inputs if isinstance(inputs, dict) else {names[0]: inputs}
    return session.run(None, {name: np.asarray(feed[name]) for name in names})[0]


@pytest.mark.slow
@pytest.mark.parametrize("format, suffix, run, tolerance", [
    ("litert", "tflite", run_litert, 1e-4), ("onnx", "onnx", run_onnx, 1e-5)])
def test_other_formats_give_the_models_outputs_on_preprocessed_inputs(
        text_model, image_model, tmp_path, format, suffix, run, tolerance):
    for name, (model, raw, _) in {"text": text_model, "image": image_model}.items():
        path = pl.hub.export(model, tmp_path / f"{name}.{suffix}", format=format)
        np.testing.assert_allclose(run(path, model.preprocessor(raw)),
                                   model.predict(raw, verbose=0), atol=tolerance)


def test_bad_export_arguments_fail_before_anything_is_written(tmp_path):
    model = regularized_model()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="`path`.*not empty"):
        pl.hub.export(model, full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="`format` must be one of.*tf_saved_model"):
        pl.hub.export(model, tmp_path / "new", format="tflite")
    with pytest.raises(ValueError, match="`input_signature` is for format='tf_saved_model'"):
        pl.hub.export(model, tmp_path / "new.tflite", format="litert",
                      input_signature=tf.TensorSpec([None, 3]))

    class Untraceable(keras.layers.Layer):  # Python on the values: no graph to save
        def call(self, x):
            return np.asarray(x) * 2

        def check_backbone(self, backbone):
            pass

    inputs = keras.Input((3,))
    ft = pl.FineTuner(keras.Model(inputs, keras.layers.Dense(4)(inputs)), pl.heads.Classifier(2),
                      preprocessor=Untraceable())
    with pytest.raises(ValueError, match="neither a pl.text.TextPreprocessor.*input_signature="):
        pl.hub.export(ft, tmp_path / "new")
    with pytest.raises(ValueError, match="`model.preprocessor` could not be traced"):
        pl.hub.export(ft, tmp_path / "new", input_signature=tf.TensorSpec([None, 3]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing half written


def test_onnx_without_its_converter_names_the_extra(tmp_path, monkeypatch):
    from pretrainlib import onnx_compat

    monkeypatch.setattr(onnx_compat, "_registered", False)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install tf2onnx onnxruntime.*\.\[onnx\]"):
        pl.hub.export(regularized_model(), tmp_path / "model.onnx", format="onnx")
    assert not any(tmp_path.iterdir())
