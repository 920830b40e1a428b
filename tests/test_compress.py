"""pl.compress: quantization through Keras (every mode reloads, preprocessors and
adapters left alone, float layers named), magnitude pruning held through fine-tuning
and stripped to exact zeros that survive saving and export, and measuring."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


@pytest.fixture
def text_ft(tokenizer, tiny_encoder, wordnet):
    def build(**kwargs):
        keras.utils.set_random_seed(0)
        ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6, dropout=0.0),
                          preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=32),
                          **kwargs)
        ft.compile(learning_rate=3e-3)
        return ft
    return build


@pytest.fixture(scope="module")
def labeled_texts(wordnet):
    return list(wordnet.train.texts[:64]), list(wordnet.train.labels[:64])


def kernels(model):
    return {w.path: w.numpy() for w in model.weights if w.path.endswith("/kernel")}


@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
@pytest.mark.slow
def test_each_mode_quantizes_a_fine_tuner_with_its_tokenizer_and_reloads(text_ft, labeled_texts,
                                                                         mode, tmp_path):
    texts, labels = labeled_texts
    ft = text_ft()
    ft.fit(texts, labels, epochs=1, verbose=0)
    before = ft.predict(texts[:8], verbose=0)
    report = pl.compress.quantize(ft, mode)  # Keras's own refuses the unbuilt tokenizer
    quantized = {path.split("/")[-1] for path in report.quantized}
    assert {"logits", "query"} <= quantized
    kept = {path.split("/")[-1] for path, _, _ in report.kept_float}
    assert {"position_embedding", "final_layer_norm"} <= kept
    assert ("token_embedding" in quantized) == (mode != "float8")  # Keras: no float8
    assert mode in str(report) and "position_embedding" in str(report)
    after = ft.predict(texts[:8], verbose=0)
    assert np.abs(after - before).max() < 0.5  # close to the float model, not equal
    ft.save(tmp_path / "q.keras")
    restored = keras.saving.load_model(tmp_path / "q.keras")
    assert restored.head.logits.quantization_mode == mode
    np.testing.assert_allclose(restored.predict(texts[:8], verbose=0), after, atol=1e-5)


@pytest.mark.slow
def test_quantize_names_conv_layers_and_leaves_adapters_in_float():
    keras.utils.set_random_seed(0)
    net = pl.backbones.ConvNet(widths=(4, 8))
    ft = pl.FineTuner(net, pl.heads.Classifier(10))
    report = pl.compress.quantize(ft, "int8")
    assert [path.split("/")[-1] for path in report.quantized] == ["logits"]
    assert any(kind == "Conv2D" for _, kind, _ in report.kept_float)

    encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16, num_heads=2,
                                       max_sequence_length=8)
    ft = pl.FineTuner(encoder, pl.heads.Classifier(2), adapters=pl.freezing.Adapters(4))
    report = pl.compress.quantize(ft, "int8")
    assert {"down", "up"} <= {path.split("/")[-1] for path, _, _ in report.kept_float}
    assert "query" in {path.split("/")[-1] for path in report.quantized}


def test_bad_quantization_fails_before_any_layer_changes(tiny_encoder):
    def modes(model):
        return {getattr(layer, "quantization_mode", None) for layer in model._flatten_layers()}

    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2))
    with pytest.raises(ValueError, match="`mode` must be one of.*int8.*Received: mode='int2'"):
        pl.compress.quantize(ft, "int2")
    with pytest.raises(ValueError, match="mode='gptq' calibrates on data: pass `config=`"):
        pl.compress.quantize(ft, "gptq")
    with pytest.raises(TypeError, match="`filters` must be a regex"):
        pl.compress.quantize(ft, "int8", filters=3)
    assert modes(ft) == {None}
    lora = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2), adapters=pl.freezing.LoRA(2))
    with pytest.raises(ValueError, match=r"LoRA adapters.*pl.freezing.LoRA.merge\(ft\)"):
        pl.compress.quantize(lora, "float8")
    assert modes(lora) == {None}
    pl.compress.quantize(ft, "int8", filters="logits")
    assert ft.head.logits.quantization_mode == "int8"
    with pytest.raises(ValueError, match="already quantized"):
        pl.compress.quantize(ft, "int4")


@pytest.mark.slow
def test_a_merged_lora_fine_tuner_keeps_its_outputs_and_quantizes(text_ft, labeled_texts,
                                                                  tmp_path):
    texts, labels = labeled_texts
    ft = text_ft(adapters=pl.freezing.LoRA(2), class_names=[str(i) for i in range(6)])
    ft.fit(texts, labels, epochs=1, verbose=0)
    merged = pl.freezing.LoRA.merge(ft)
    assert isinstance(merged, pl.FineTuner) and merged.adapters is None
    assert merged.class_names == ft.class_names and merged.preprocessor is not None
    assert not any(getattr(layer, "lora_enabled", False) for layer in merged._flatten_layers())
    np.testing.assert_allclose(merged.predict(texts[:8], verbose=0),
                               ft.predict(texts[:8], verbose=0), atol=1e-5)
    pl.compress.quantize(merged, "int8")
    merged.save(tmp_path / "merged.keras")
    restored = keras.saving.load_model(tmp_path / "merged.keras")
    np.testing.assert_allclose(restored.predict(texts[:8], verbose=0),
                               merged.predict(texts[:8], verbose=0), atol=1e-5)


@pytest.mark.slow
def test_pruned_weights_stay_exactly_zero_through_fine_tuning_saving_and_export(
        text_ft, labeled_texts, tmp_path):
    texts, labels = labeled_texts
    ft = text_ft(policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    pruning = pl.compress.prune(ft, sparsity=0.5)
    assert pruning.sparsity() == pytest.approx(0.5, abs=1e-4)
    masks = {path: value == 0 for path, value in kernels(ft).items()}
    before = kernels(ft)
    lines = []
    ft.summary(print_fn=lines.append)
    assert "50.0% of" in "\n".join(lines) and "global magnitude" in "\n".join(lines)
    ft.fit(texts, labels, epochs=2, verbose=0)  # the policy unfreezes the backbone
    after = kernels(ft)
    moved = 0
    for path, zero in masks.items():
        assert (after[path][zero] == 0).all(), path  # masked: exact zeros throughout
        moved += int(np.any(after[path][~zero] != before[path][~zero]))
    assert moved == len(masks)  # and the rest trained
    pl.compress.strip_pruning(ft)
    assert all(w.constraint is None for w in pruning.pruned) and ft._pruning is None
    ft.save(tmp_path / "pruned.keras")
    restored = keras.saving.load_model(tmp_path / "pruned.keras")
    assert pl.compress.sparsity_of(restored) == pytest.approx(0.5, abs=1e-4)
    path = pl.hub.export(ft, tmp_path / "exported")
    exported = {v.name.split(":")[0]: v.numpy() for v in tf.saved_model.load(path).variables}
    zeros = sum(int((v == 0).sum()) for name, v in exported.items() if name.endswith("kernel"))
    assert zeros == sum(int(z.sum()) for z in masks.values())


def test_layer_scope_prunes_each_kernel_to_the_sparsity():
    inputs = keras.Input((32,))
    x = keras.layers.Dense(64, name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="narrow")(x * 10.0))
    pl.compress.prune(model, sparsity=0.8, scope="layer")
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            assert np.mean(layer.kernel.numpy() == 0) == pytest.approx(0.8, abs=1e-3)
    pl.compress.strip_pruning(model)
    pl.compress.prune(model, sparsity=0.5, layers="narrow")  # only that layer
    assert np.mean(model.get_layer("wide").kernel.numpy() == 0) == pytest.approx(0.8, abs=1e-3)


def test_gradual_pruning_rises_monotonically_to_the_target_during_fit():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(32)(inputs)))
    model.compile("adam", "mse")
    pruning = pl.compress.prune(model, sparsity=0.8,
                                schedule=pl.compress.GradualSchedule(frequency=2))
    assert pruning.sparsity() == 0.0

    class Record(keras.callbacks.Callback):
        seen, zeros = [], []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(pruning.sparsity())
            self.zeros.append([w.numpy() == 0 for w in pruning.pruned])

    x, y = np.random.rand(64, 16), np.random.rand(64, 3)
    model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[pruning, Record()])
    assert Record.seen == sorted(Record.seen) and Record.seen[0] < 0.8
    assert Record.seen[-1] == pytest.approx(0.8, abs=1e-3)
    for earlier, later in zip(Record.zeros, Record.zeros[1:]):  # once pruned, pruned
        for a, b in zip(earlier, later):
            assert not (a & ~b).any()


def test_bad_pruning_arguments_fail_clearly(tiny_encoder):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    for sparsity in (1.0, -0.1, "0.5", True):
        with pytest.raises(ValueError, match=r"`sparsity` must be in \[0, 1\)"):
            pl.compress.prune(model, sparsity=sparsity)
    with pytest.raises(ValueError, match="`scope`"):
        pl.compress.prune(model, scope="row")
    with pytest.raises(ValueError, match="No layer to prune"):
        pl.compress.prune(model, layers="nothing")
    with pytest.raises(ValueError, match="no pruning to strip"):
        pl.compress.strip_pruning(model)
    with pytest.raises(ValueError, match="`end_step`.*after `begin_step`"):
        pl.compress.GradualSchedule(begin_step=10, end_step=5)
    assert model.layers[-1].kernel.constraint is None  # nothing applied on failure
    pl.compress.prune(model, sparsity=0.5)
    with pytest.raises(ValueError, match="already being pruned"):
        pl.compress.prune(model, sparsity=0.5)
    quantized = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    pl.compress.quantize(quantized, "int8")
    with pytest.raises(ValueError, match="quantized.*prune the float model, then quantize"):
        pl.compress.prune(quantized)
    lora = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(2), adapters=pl.freezing.LoRA(2))
    with pytest.raises(ValueError, match="LoRA adapters.*merge them first"):
        pl.compress.prune(lora)


def test_measure_reports_size_latency_and_metrics(text_ft, labeled_texts, tokenizer):
    texts, labels = labeled_texts
    ft = text_ft()
    data = pl.data.text_dataset(texts, tokenizer, labels=labels, batch_size=16,
                                sequence_length=32, shuffle=False)
    ft.fit(data, epochs=1, verbose=0)
    dense = pl.compress.measure(ft, data, batch_sizes=(1, 4), repeats=3)
    assert sorted(dense.latency_ms) == [1, 4] and all(v > 0 for v in dense.latency_ms.values())
    assert set(dense.metrics) == {"accuracy", "macro_f1"}
    assert dense.metrics["accuracy"] == pytest.approx(
        pl.Evaluator(["accuracy"]).evaluate(ft, data).metrics["accuracy"])
    pl.compress.prune(ft, sparsity=0.8)
    pl.compress.strip_pruning(ft)
    pruned = pl.compress.measure(ft, data, batch_sizes=(1,), repeats=3)
    assert abs(pruned.size_bytes - dense.size_bytes) < 1024  # zeros take as much room, raw
    assert pruned.gzip_bytes < dense.gzip_bytes  # but compress away
    assert "MiB on disk" in str(pruned)
    with pytest.raises(TypeError, match="`data` must be a tf.data.Dataset"):
        pl.compress.measure(ft, texts)
