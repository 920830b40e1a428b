"""Adapter-only files: a FineTuner's transform weights and head alone, a few percent of
the model, read back onto the same base from any source (the backbone in memory, a
`.keras` file, a KerasHub preset, an int8-quantized copy) with equal outputs; LoRA
fine-tunes on a frozen int8 base; a base, transform or head that differs is refused
naming what differs, and nothing changes."""

import os
import warnings

import keras
import keras_hub
import numpy as np
import pytest

import pretrainlib as pl


@pytest.fixture
def texts(wordnet):
    part = wordnet.train.sample(48, seed=0)
    return list(part.texts), np.asarray(part.labels)


def fine_tuner(backbone, tokenizer, adapters=None, classes=6, **kwargs):
    return pl.FineTuner(backbone, pl.heads.Classifier(classes), adapters=adapters,
                        preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=32),
                        **kwargs)


def trained(ft, texts, epochs=2):
    ft.compile(learning_rate=1e-2)
    history = ft.fit(*texts, epochs=epochs, batch_size=16, verbose=0)
    return history.history["loss"]


def snapshot(model):
    return [np.array(v) for v in model.weights]


@pytest.mark.slow
def test_lora_file_is_small_and_reloads_onto_the_base_read_from_a_keras_file(
        tiny_encoder, tokenizer, texts, tmp_path):
    encoder = tiny_encoder(hidden_dim=64)
    encoder.save(tmp_path / "base.keras")  # the base, shipped once
    ft = fine_tuner(encoder, tokenizer, pl.freezing.LoRA(4), class_names=list("abcdef"))
    trained(ft, texts)
    path = ft.save_adapters(tmp_path / "task.adapters.h5")
    ft.save(tmp_path / "whole.keras")
    assert os.path.getsize(path) < 0.05 * os.path.getsize(tmp_path / "whole.keras")

    again = fine_tuner(pl.hub.load_backbone(tmp_path / "base.keras"), tokenizer,
                       pl.freezing.LoRA(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the same base: no warning
        again.load_adapters(path)
    np.testing.assert_allclose(again.predict(texts[0], verbose=0),
                               ft.predict(texts[0], verbose=0), atol=1e-5)
    assert again.class_names == list("abcdef")  # the file names the classes


@pytest.mark.slow
def test_a_keras_hub_preset_base_takes_its_adapters_back(tokenizer, texts, tmp_path):
    keras.utils.set_random_seed(0)
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocab_size, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=32, dropout=0.0)
    bert.save_to_preset(str(tmp_path / "preset"))
    ft = fine_tuner(bert, tokenizer, pl.freezing.LoRA(4))
    trained(ft, texts)
    path = ft.save_adapters(tmp_path / "bert.adapters.h5")
    again = fine_tuner(pl.hub.load_backbone(str(tmp_path / "preset")), tokenizer,
                       pl.freezing.LoRA(4))
    again.load_adapters(path)
    np.testing.assert_allclose(again.predict(texts[0], verbose=0),
                               ft.predict(texts[0], verbose=0), atol=1e-5)


@pytest.mark.slow
def test_lora_trains_on_a_frozen_int8_base_and_its_adapters_reload_exactly(
        tiny_encoder, tokenizer, texts, tmp_path):
    base = tiny_encoder()
    quantized = pl.backbones.clone(base)
    pl.compress.quantize(quantized, "int8")
    ft = fine_tuner(quantized, tokenizer, pl.freezing.LoRA(4))
    int8 = [v for v in ft.weights if v.dtype == "int8"]
    assert int8 and not any(v.trainable for v in int8)
    assert {v.path.rsplit("/", 1)[1] for v in ft.trainable_weights} == {
        "lora_kernel_a", "lora_kernel_b", "kernel", "bias"}
    assert all(v.path.startswith("classifier") or "lora" in v.path
               for v in ft.trainable_weights)  # the base's float kernels stay frozen
    frozen = [np.array(v) for v in ft.backbone.weights if "lora" not in v.path]
    losses = trained(ft, texts, epochs=4)
    assert losses[-1] < losses[0], losses
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(
        frozen, [v for v in ft.backbone.weights if "lora" not in v.path]))

    path = ft.save_adapters(tmp_path / "int8.adapters.h5")
    copy = pl.backbones.clone(base)
    pl.compress.quantize(copy, "int8")
    again = fine_tuner(copy, tokenizer, pl.freezing.LoRA(4))
    again.load_adapters(path)
    np.testing.assert_allclose(again.predict(texts[0], verbose=0),
                               ft.predict(texts[0], verbose=0), atol=1e-6)
    # It exports as it is, raw strings in.
    served = pl.hub.export(ft, tmp_path / "served")
    import tensorflow as tf
    probabilities = tf.saved_model.load(served).signatures["serving_default"](
        tf.constant(texts[0]))["probabilities"]
    np.testing.assert_allclose(probabilities, tf.nn.softmax(ft.predict(texts[0], verbose=0)),
                               atol=1e-5)


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.slow
def test_a_lora_fine_tuner_saved_whole_reloads_its_factors_and_trains_on(
        tiny_encoder, tokenizer, texts, tmp_path, quantized):
    # Keras saves a LoRA layer merged and zeroes its factors on load (then neither
    # gets a gradient); the FineTuner keeps them, on a quantized base exactly too.
    base = tiny_encoder()
    if quantized:
        pl.compress.quantize(base, "int8")
    ft = fine_tuner(base, tokenizer, pl.freezing.LoRA(4))
    trained(ft, texts)
    ft.save(tmp_path / "ft.keras")
    again = keras.saving.load_model(tmp_path / "ft.keras")
    lora = [v for v in again.weights if "lora_kernel" in v.path]
    assert len(lora) % 2 == 0 and lora
    for saved, loaded in zip(snapshot(ft), snapshot(again)):
        np.testing.assert_array_equal(saved, loaded)
    before = snapshot(again)
    trained(again, texts, epochs=1)
    moved = {v.path for v, b in zip(again.weights, before) if not np.array_equal(v, b)}
    assert {v.path for v in lora} <= moved  # both factors learn on
    assert not any("lora" not in p and ("query" in p or "value" in p) for p in moved)


def test_plain_weights_read_into_a_lora_fine_tuner_leave_its_update_free_to_learn(
        tiny_encoder, tokenizer, texts, tmp_path):
    # Keras zeroes the factors of a LoRA layer it loads into (then neither learns):
    # they start again as enable_lora starts them, and the outputs are the plain ones.
    plain = fine_tuner(tiny_encoder(), tokenizer)
    plain.save_weights(tmp_path / "plain.weights.h5")
    ft = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4))
    ft.load_weights(tmp_path / "plain.weights.h5")
    np.testing.assert_allclose(ft.predict(texts[0][:8], verbose=0),
                               plain.predict(texts[0][:8], verbose=0), atol=1e-6)
    before = {v.path: np.array(v) for v in ft.weights if "lora_kernel" in v.path}
    assert any(np.abs(value).max() > 0 for value in before.values())
    trained(ft, texts, epochs=1)
    assert all(not np.array_equal(np.array(v), before[v.path]) for v in ft.weights
               if v.path in before)


def test_lora_weights_of_other_targets_are_refused_naming_the_cause(
        tiny_encoder, tokenizer, tmp_path):
    ft = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4))
    ft.save_weights(tmp_path / "lora.weights.h5")
    other = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4, targets=("query",)))
    with pytest.raises(ValueError, match="holds 16 weights of LoRA layers but this model "
                                         "has 8: it was saved from a model with other LoRA"):
        other.load_weights(tmp_path / "lora.weights.h5")


def test_adapters_and_bitfit_round_trip_batchnorm_statistics_included(tmp_path):
    images = pl.datasets.fashion_mnist().train.sample(40, seed=0)
    x, y = images.images[..., None] / 255.0, images.labels
    for adapters in (pl.freezing.BitFit(), pl.freezing.Adapters(4)):
        keras.utils.set_random_seed(0)
        net = pl.backbones.ConvNet(widths=(4, 8))
        base = pl.backbones.clone(net)
        ft = pl.FineTuner(net, pl.heads.Classifier(10), adapters=adapters)
        ft.compile(learning_rate=1e-2)
        ft.fit(x, y, epochs=2, batch_size=8, verbose=0)
        path = ft.save_adapters(tmp_path / f"{type(adapters).__name__}.h5")
        again = pl.FineTuner(base, pl.heads.Classifier(10), adapters=adapters)
        again.load_adapters(path)
        np.testing.assert_allclose(again.predict(x, verbose=0), ft.predict(x, verbose=0),
                                   atol=1e-5)


def test_a_mismatched_base_transform_or_head_is_refused_and_nothing_changes(
        tiny_encoder, tokenizer, texts, tmp_path):
    ft = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4))
    trained(ft, texts, epochs=1)
    path = ft.save_adapters(tmp_path / "a.h5")

    wider = fine_tuner(tiny_encoder(hidden_dim=48), tokenizer, pl.freezing.LoRA(4))
    before = snapshot(wider)
    with pytest.raises(ValueError, match=r"Layer 'transformer_layer_0/self_attention_layer/"
                                         r"query'.*shape.*other shapes"):
        wider.load_adapters(path)
    assert all(np.array_equal(a, b) for a, b in zip(before, snapshot(wider)))

    deeper = fine_tuner(tiny_encoder(num_layers=3), tokenizer, pl.freezing.LoRA(4))
    with pytest.raises(ValueError, match="lacks, first 'transformer_layer_2/"):
        deeper.load_adapters(path)
    other_rank = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(8))
    with pytest.raises(ValueError, match=r"adapters=LoRA\(\{'rank': 4.*adapters=LoRA\("
                                         r"\{'rank': 8.*same `adapters`"):
        other_rank.load_adapters(path)
    other_head = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4), classes=3)
    with pytest.raises(ValueError, match="head=Classifier.*same `head`"):
        other_head.load_adapters(path)
    plain = fine_tuner(tiny_encoder(), tokenizer, None)
    with pytest.raises(ValueError, match=r"this one has adapters=None"):
        plain.load_adapters(path)

    with pytest.raises(FileNotFoundError, match="`path`.*is not a file"):
        ft.load_adapters(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="`path`.*is not an adapter file"):
        ft.load_adapters(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError, match="`path`.*folder.*does not exist"):
        ft.save_adapters(tmp_path / "no" / "such.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "text.h5"]

    keras.utils.set_random_seed(1)  # same shapes, other weights: loads, with a warning
    other = fine_tuner(tiny_encoder(), tokenizer, pl.freezing.LoRA(4))
    with pytest.warns(UserWarning, match="base weights differ"):
        other.load_adapters(path)
