"""Pretrainer and FineTuner behave as a Keras user expects: compile in Keras's order
with any optimizer, arrays into fit/evaluate/predict, a second fit continuing, the
user's own freezing respected, and mismatched data named before any step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


def snapshot(model):
    return [np.array(v) for v in model.weights]


def moved(before, variables):
    return [not np.array_equal(a, np.array(b)) for a, b in zip(before, variables)]


@pytest.fixture
def ft(tiny_encoder):
    def build(policy=None, **kwargs):
        return pl.FineTuner(tiny_encoder(**kwargs), pl.heads.Classifier(6), policy=policy)
    return build


# === compile ===
@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("rmsprop", "RMSprop"),
                                       ("lion", "Lion"), ("adafactor", "Adafactor"),
                                       ("auto", "AdamW"), ("sgd", "SGD")])
def test_any_keras_optimizer_string_gets_the_schedule_and_clipping(ft, name, cls):
    model = ft()
    model.compile(name, learning_rate=3e-4)
    assert type(model.optimizer).__name__ == cls
    schedule = model._schedule()
    assert isinstance(schedule, pl.training.WarmupLinearDecay)
    assert schedule.peak == 3e-4 and model.optimizer.clipnorm == 1.0
    assert hasattr(model.optimizer, "set_lr_multipliers")


def test_compile_takes_keras_positional_order(ft):
    model = ft()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="my_loss")
    model.compile("adamw", loss, None, ["accuracy"])
    assert model.loss is loss
    with pytest.raises(ValueError, match="optimizer.*'lamb'"):
        model.compile("lamb")


def test_per_group_rates_reach_a_generic_keras_optimizer(ft, labeled):
    model = ft(pl.freezing.LayerwiseLRDecay(0.5))
    model.compile("rmsprop", learning_rate=1e-3)
    model.fit(labeled(n=32), epochs=1, verbose=0)
    multipliers = sorted(set(model.optimizer._lr_multipliers.values()))
    assert multipliers == [0.125, 0.25, 0.5]  # embeddings, block_0, block_1; head at 1


def test_a_learning_rate_of_zero_is_a_rate(ft, labeled):
    model = ft(pl.freezing.FullFineTune(), dropout=0.0)
    model.compile(learning_rate=0.0)
    before = snapshot(model)
    model.fit(labeled(n=32), epochs=1, verbose=0)
    assert not any(moved(before, model.weights))


def test_an_optimizer_instance_keeps_its_identity_and_gains_group_rates(ft, labeled):
    model = ft(pl.freezing.LayerwiseLRDecay(0.5))
    mine = keras.optimizers.RMSprop(1e-3)
    model.compile(mine)
    assert model.optimizer is mine and float(mine.learning_rate) == pytest.approx(1e-3)
    model.fit(labeled(n=32), epochs=1, verbose=0)
    assert int(mine.iterations) == 2
    with pytest.raises(ValueError, match="learning_rate"):
        model.compile(keras.optimizers.Adam(), learning_rate=1e-3)


# === fit / evaluate / predict take what keras.Model takes ===
def test_arrays_go_into_fit_evaluate_and_predict():
    keras.utils.set_random_seed(0)
    fm = pl.datasets.fashion_mnist().train.sample(48, seed=0)
    model = pl.FineTuner(pl.backbones.ConvNet(widths=(8,)), pl.heads.Classifier(10),
                         policy=pl.freezing.FullFineTune())
    model.compile(learning_rate=1e-2)
    x = (fm.images[..., None] / 255).astype("float32")
    history = model.fit(x, fm.labels, batch_size=8, epochs=2, validation_split=0.25,
                        verbose=0)
    assert len(history.history["loss"]) == 2 and "val_accuracy" in history.history
    assert model.evaluate(x, fm.labels, verbose=0, return_dict=True)["accuracy"] >= 0
    assert model.predict(x[:5], verbose=0).shape == (5, 10)
    history = model.fit(x, fm.labels, validation_data=(x[:8], fm.labels[:8]), verbose=0)
    assert "val_loss" in history.history
    with pytest.raises(ValueError, match="same number of examples"):
        model.fit(x, fm.labels[:-1], verbose=0)
    with pytest.raises(ValueError, match="`y` must be None"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, fm.labels)).batch(8), fm.labels)


def test_dicts_of_arrays_fit_a_text_model(ft, tokenizer, wordnet):
    part = wordnet.train.sample(40, seed=0)
    x = {k: np.asarray(v) for k, v in tokenizer.encode(part.texts, 32).items()}
    model = ft()
    model.compile()
    history = model.fit(x, np.asarray(part.labels), batch_size=16, epochs=1, verbose=0)
    assert history.history["loss"][0] > 0


@pytest.mark.slow
def test_raw_texts_with_a_preprocessor(tiny_encoder, tokenizer, wordnet, tmp_path):
    part = wordnet.train.sample(48, seed=0)
    model = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                         preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=32))
    model.compile(learning_rate=3e-3)
    model.fit(part.texts, part.labels, batch_size=16, epochs=2, verbose=0)
    scores = model.evaluate(part.texts, part.labels, verbose=0, return_dict=True)
    assert 0 <= scores["accuracy"] <= 1
    predicted = model.predict(part.texts[:3], verbose=0)
    model.save(tmp_path / "raw.keras")
    restored = keras.saving.load_model(tmp_path / "raw.keras")
    np.testing.assert_allclose(restored.predict(part.texts[:3], verbose=0), predicted,
                               atol=1e-5)
    with pytest.raises(ValueError, match="sequence_length=64.*max_sequence_length=32"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                     preprocessor=pl.text.TextPreprocessor(tokenizer, sequence_length=64))


# === a second fit continues ===
def test_a_second_fit_continues_the_policy_unless_initial_epoch_says_otherwise(ft, labeled):
    model = ft(pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    model.compile(learning_rate=1e-3)
    data = labeled(n=32)
    start = snapshot(model.backbone)
    model.fit(data, epochs=1, verbose=0)
    assert (model.current_stage, model.epochs_trained) == (0, 1)
    assert not any(moved(start, model.backbone.weights))
    model.fit(data, epochs=1, verbose=0)  # epoch 1 of the policy: unfrozen
    assert (model.current_stage, model.epochs_trained) == (1, 2)
    assert all(moved(start, model.backbone.weights))
    after = snapshot(model.backbone)
    model.fit(data, epochs=1, initial_epoch=0, verbose=0)  # explicitly from the start
    assert model.current_stage == 0
    assert not any(moved(after, model.backbone.weights))


@pytest.mark.slow
def test_epochs_trained_survives_saving(ft, labeled, tmp_path):
    model = ft(pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    model.compile()
    model.fit(labeled(n=32), epochs=1, verbose=0)
    model.save(tmp_path / "ft.keras")
    restored = keras.saving.load_model(tmp_path / "ft.keras")
    assert restored.epochs_trained == 1
    restored.fit(labeled(n=32), epochs=1, verbose=0)
    assert restored.current_stage == 1


# === the user's freezing ===
def test_a_backbone_you_froze_never_trains(tiny_encoder, labeled, tmp_path):
    encoder = tiny_encoder()
    encoder.trainable = False
    model = pl.FineTuner(encoder, pl.heads.Classifier(6), policy=pl.freezing.FullFineTune())
    model.compile(learning_rate=1e-2)
    start, head = snapshot(encoder), snapshot(model.head)
    model.fit(labeled(n=32), epochs=2, verbose=0)
    assert not any(moved(start, encoder.weights))
    assert any(moved(head, model.head.weights))
    lines = []
    model.summary(print_fn=lines.append)
    assert "params you froze never train" in lines[0]
    model.save(tmp_path / "frozen.keras")  # reloaded, it still knows what you froze
    restored = keras.saving.load_model(tmp_path / "frozen.keras")
    start = snapshot(restored.backbone)
    restored.fit(labeled(n=32), epochs=1, verbose=0)
    assert not any(moved(start, restored.backbone.weights))


@pytest.mark.slow
def test_a_layer_you_froze_stays_frozen_through_every_stage(tiny_encoder, labeled):
    encoder = tiny_encoder()
    encoder.get_layer("transformer_layer_0").trainable = False
    model = pl.FineTuner(encoder, pl.heads.Classifier(6),
                         policy=pl.freezing.GradualUnfreeze(every_epochs=1))
    model.compile(learning_rate=1e-2)
    frozen = encoder.get_layer("transformer_layer_0")
    start = snapshot(frozen)
    other = snapshot(encoder.get_layer("transformer_layer_1"))
    model.fit(labeled(n=32), epochs=4, verbose=0)
    assert model.current_stage == 3
    assert not any(moved(start, frozen.weights))
    assert any(moved(other, encoder.get_layer("transformer_layer_1").weights))


def test_a_backbone_loaded_frozen_stays_frozen(tiny_encoder, labeled, tmp_path):
    tiny_encoder().save(tmp_path / "backbone.keras")
    backbone = pl.hub.load_backbone(tmp_path / "backbone.keras", trainable=False)
    model = pl.FineTuner(backbone, pl.heads.Classifier(6))
    model.compile(learning_rate=1e-2)
    start = snapshot(backbone)
    model.fit(labeled(n=32), epochs=2, verbose=0)  # FreezeThenUnfreeze's stage 1 too
    assert model.current_stage == 1 and not any(moved(start, backbone.weights))


# === data the model cannot take, named before any step ===
def test_rows_longer_than_the_backbone_takes_are_named(ft, tokenizer):
    model = ft()
    model.compile()
    texts = ["a dog barks", "a cat sleeps"]
    data = pl.data.text_dataset(texts, tokenizer, labels=[0, 1])  # sequence_length=128
    with pytest.raises(ValueError, match="rows of 128 tokens.*max_sequence_length=32"):
        model.fit(data, verbose=0)
    with pytest.raises(ValueError, match="rows of 128 tokens"):
        model.evaluate(data, verbose=0)


def test_images_of_another_size_are_named():
    model = pl.FineTuner(pl.backbones.ConvNet(input_shape=(28, 28, 1), widths=(4,)),
                         pl.heads.Classifier(2))
    model.compile()
    with pytest.raises(ValueError, match=r"\(32, 32, 1\).*\(28, 28, 1\)"):
        model.fit(np.zeros((4, 32, 32, 1), "float32"), np.array([0, 1, 0, 1]), verbose=0)


# === caching, quantization, reproducible evaluation ===
def test_augmented_data_is_never_trained_from_a_feature_cache():
    fm = pl.datasets.fashion_mnist().train.sample(32, seed=0)
    model = pl.FineTuner(pl.backbones.ConvNet(widths=(4,)), pl.heads.Classifier(10),
                         policy=pl.freezing.FeatureExtraction())
    model.compile()
    augmented = pl.data.image_dataset(fm.images, fm.labels, batch_size=16,
                                      augment=[keras.layers.RandomTranslation(0.1, 0.1)])
    model.fit(augmented, epochs=1, verbose=0)
    assert model.fit_on_cached_features is False
    model.fit(pl.data.image_dataset(fm.images, fm.labels, batch_size=16), verbose=0)
    assert model.fit_on_cached_features is True
    with pytest.raises(ValueError, match="draws random numbers"):
        model.fit(augmented, cache_features=True, verbose=0)


@pytest.mark.slow
def test_a_quantized_fine_tuner_saves_and_reloads(ft, labeled, tmp_path):
    model = ft()
    model.compile()
    data = labeled(n=32, shuffle=False)
    model.fit(data, epochs=1, verbose=0)
    model.quantize("int8")
    x = next(iter(data))[0]
    model.save(tmp_path / "int8.keras")
    restored = keras.saving.load_model(tmp_path / "int8.keras")
    assert restored.head.logits.quantization_mode == "int8"
    np.testing.assert_allclose(restored.predict_on_batch(x), model.predict_on_batch(x),
                               atol=1e-5)


def test_pretrainer_evaluation_draws_the_same_masks_every_time(tiny_encoder, tokenizer,
                                                               glosses, tmp_path):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer))
    pre.compile()
    data = pl.data.text_dataset(glosses[:64], tokenizer, batch_size=16, sequence_length=32,
                                shuffle=False)
    first = pre.evaluate(data, verbose=0, return_dict=True)
    assert pre.evaluate(data, verbose=0, return_dict=True) == first
    pre.save(tmp_path / "pre.keras")
    restored = keras.saving.load_model(tmp_path / "pre.keras")
    assert restored.seed == pre.seed
    np.testing.assert_allclose(restored.evaluate(data, verbose=0), pre.evaluate(data, verbose=0),
                               rtol=1e-6)


@pytest.mark.slow
def test_a_pretrainer_with_a_preprocessor_pretrains_on_raw_texts(tiny_encoder, tokenizer,
                                                                  glosses, tmp_path):
    pre = pl.Pretrainer(tiny_encoder(), pl.objectives.MaskedLM(tokenizer=tokenizer),
                        preprocessor=pl.text.TextPreprocessor(tokenizer, 32, pack=True))
    pre.compile(learning_rate=3e-3)
    losses = pre.fit(glosses[:600], batch_size=16, epochs=2, verbose=0).history["loss"]
    assert losses[1] < losses[0]
    assert pre.evaluate(glosses[:64], verbose=0) == pre.evaluate(glosses[:64], verbose=0)
    pre.save(tmp_path / "pre.keras")
    assert keras.saving.load_model(tmp_path / "pre.keras").preprocessor.pack


def test_stage_arithmetic_has_one_source():
    policy = pl.freezing.GradualUnfreeze(every_epochs=2)
    groups = ["embeddings", "block_0", "block_1", "head"]
    assert [policy.stage_index(e, groups) for e in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="depend on the model's layer groups.*groups"):
        policy.stage_index(5)
