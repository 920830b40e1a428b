"""The built-in policies beyond the vertical slice: what trains, and what not."""

import keras
import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.freezing import FreezePolicy, Stage


def snapshot(model):
    return {v.path: np.array(v) for v in model.weights}


def changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], np.array(v))}


def fit(policy, tiny_encoder, labeled, epochs=1, optimizer=None, **encoder_kwargs):
    ft = pl.FineTuner(tiny_encoder(**encoder_kwargs), pl.heads.Classifier(6), policy=policy)
    ft.compile(optimizer=optimizer) if optimizer is not None else ft.compile(learning_rate=1e-2)
    before = snapshot(ft)
    ft.fit(labeled(), epochs=epochs, verbose=0)
    return ft, changed(before, ft)


def assert_reloads_the_same(ft, x, path):
    ft.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), ft.predict(x, verbose=0),
                               atol=1e-5)


def group_of(path):
    if path.startswith("final_layer_norm"):  # normalizes the top block: its group
        return "transformer_layer_1"
    for group in ("transformer_layer_0", "transformer_layer_1", "classifier"):
        if path.startswith(group):  # classifier, classifier_1...
            return group
    return "embeddings"


@pytest.mark.slow
def test_gradual_unfreeze_opens_one_group_per_stage_from_the_top(tiny_encoder, labeled):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.GradualUnfreeze(every_epochs=1))
    ft.compile(learning_rate=1e-2)
    moved = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = snapshot(ft)

        def on_epoch_end(self, epoch, logs=None):
            moved.append({group_of(p) for p in changed(self.before, ft)})

    ft.fit(labeled(), epochs=4, callbacks=[Watch()], verbose=0)
    assert moved == [
        {"classifier"},
        {"classifier", "transformer_layer_1"},
        {"classifier", "transformer_layer_1", "transformer_layer_0"},
        {"classifier", "transformer_layer_1", "transformer_layer_0", "embeddings"},
    ]
    assert ft.current_stage == 3


@pytest.mark.slow
def test_layerwise_lr_decay_scales_sgd_updates_by_depth(tiny_encoder, labeled):
    ds = labeled(n=16, batch_size=16, shuffle=False)
    initial, head_initial = None, None
    updates = {}
    for name, policy in (("full", pl.freezing.FullFineTune()),
                         ("llrd", pl.freezing.LayerwiseLRDecay(decay=0.5))):
        encoder = tiny_encoder(dropout=0.0)
        initial = initial or encoder.get_weights()
        encoder.set_weights(initial)
        keras.utils.set_random_seed(0)
        ft = pl.FineTuner(encoder, pl.heads.Classifier(6, dropout=0.0), policy=policy)
        head_initial = head_initial or ft.head.get_weights()
        ft.head.set_weights(head_initial)
        ft.compile(optimizer=pl.training.SGD(learning_rate=0.1))
        before = snapshot(ft)
        ft.fit(ds, epochs=1, verbose=0)  # one step
        updates[name] = [(v.path, np.array(v) - before[v.path]) for v in ft.weights]
    expected = {"embeddings": 0.125, "transformer_layer_0": 0.25,
                "transformer_layer_1": 0.5, "classifier": 1.0}
    checked = set()
    for (path, full), (_, llrd) in zip(updates["full"], updates["llrd"]):
        if np.linalg.norm(full) < 1e-6:
            continue
        ratio = np.linalg.norm(llrd) / np.linalg.norm(full)
        assert ratio == pytest.approx(expected[group_of(path)], rel=1e-3), path
        checked.add(group_of(path))
    assert checked == set(expected)


def test_bitfit_trains_only_biases_and_norms(tiny_encoder, labeled):
    ft, moved = fit(pl.freezing.BitFit(), tiny_encoder, labeled)
    backbone_moved = {p for p in moved if group_of(p) != "classifier"}
    names = {p.rsplit("/", 1)[-1] for p in backbone_moved}
    assert names == {"bias", "gamma", "beta"}
    every_bias_or_norm = {v.path for v in ft.backbone.weights
                          if v.name in ("bias", "gamma", "beta")}
    assert backbone_moved == every_bias_or_norm
    assert {p.split("/", 1)[1] for p in moved if p.startswith("classifier")} == {
        "logits/kernel", "logits/bias"}
    # Counted and reported: trainable parameters, and optimizer slots only for them.
    trainable = sum(int(np.prod(v.shape)) for v in ft.trainable_variables)
    expected = (sum(int(np.prod(v.shape)) for v in ft.backbone.weights
                    if v.name in ("bias", "gamma", "beta"))
                + sum(int(np.prod(v.shape)) for v in ft.head.weights))
    assert trainable == expected
    assert len(ft.optimizer._momentums) == len(ft.trainable_variables)
    stage_row = ft.policy.summary(ft).splitlines()[2]
    assert stage_row.split()[-1] == f"{expected / 1000:.1f}k"


def test_lora_trains_only_the_low_rank_updates_and_merges_exactly(tiny_encoder, labeled):
    policy = pl.freezing.LoRA(rank=4, alpha=8)
    ft, moved = fit(policy, tiny_encoder, labeled, epochs=2)
    backbone_moved = {p for p in moved if group_of(p) != "classifier"}
    assert backbone_moved and {p.rsplit("/", 1)[-1] for p in backbone_moved} == {
        "lora_kernel_a", "lora_kernel_b"}
    assert {p.split("/")[-2] for p in backbone_moved} == {"query", "value"}
    lora_params = sum(int(np.prod(v.shape)) for v in ft.backbone.weights if "lora" in v.name)
    # rank 4 on 2 layers x (query, value): A is (32, heads 2, 4), B is (4, 16).
    assert lora_params == 2 * 2 * (32 * 2 * 4 + 4 * 16)
    assert len(ft.optimizer._momentums) == len(ft.trainable_variables)
    x = next(iter(labeled(shuffle=False)))[0]
    merged = pl.freezing.LoRA.merge(ft.backbone)
    assert not any("lora" in v.path for v in merged.weights)
    np.testing.assert_allclose(merged(x)["pooled_output"], ft.backbone(x)["pooled_output"],
                               atol=1e-5)


def test_adapters_train_alone_and_start_as_the_identity(tiny_encoder, labeled, tmp_path):
    encoder = tiny_encoder()
    x = next(iter(labeled(shuffle=False)))[0]
    plain = np.array(encoder(x)["pooled_output"])
    ft = pl.FineTuner(encoder, pl.heads.Classifier(6), policy=pl.freezing.Adapters(8))
    adapted_backbone = ft.layers[-2]
    np.testing.assert_allclose(adapted_backbone(x)["pooled_output"], plain, atol=1e-6)
    ft.compile(learning_rate=1e-2)
    before = snapshot(ft)
    ft.fit(labeled(), epochs=2, verbose=0)
    moved = changed(before, ft)
    assert not {p for p in moved if p.startswith("transformer") and "adapter" not in p}
    assert not {p for p in moved if group_of(p) == "embeddings" and "adapter" not in p}
    assert {p for p in moved if "adapter" in p}
    # Each adapter joins the group of the block it follows.
    assert [ft.layer_groups[g][-1].name for g in ("block_0", "block_1")] == [
        "transformer_layer_0_adapter", "transformer_layer_1_adapter"]
    per_adapter = 32 * 8 + 8 + 8 * 32 + 32
    assert sum(int(np.prod(v.shape)) for v in ft.trainable_variables) == \
        2 * per_adapter + 32 * 6 + 6
    assert_reloads_the_same(ft, x, tmp_path / "adapted.keras")


@pytest.mark.slow
def test_lora_fine_tuner_saves_and_reloads(tiny_encoder, labeled, tmp_path):
    ft, _ = fit(pl.freezing.LoRA(rank=2), tiny_encoder, labeled)
    assert_reloads_the_same(ft, next(iter(labeled(shuffle=False)))[0], tmp_path / "lora.keras")


@pytest.mark.slow
def test_current_stage_is_saved_and_restored(tiny_encoder, labeled, tmp_path):
    ft, _ = fit(pl.freezing.FreezeThenUnfreeze(freeze_epochs=1), tiny_encoder, labeled,
                epochs=2)
    assert ft.current_stage == 1
    ft.save(tmp_path / "ft.keras")
    restored = keras.saving.load_model(tmp_path / "ft.keras")
    assert restored.current_stage == 1
    assert restored.backbone.token_embedding.trainable
    fresh = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                         policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    assert fresh.current_stage is None  # not trained yet, but stage 0 is applied:
    assert [v.path.split("/")[0] for v in fresh.trainable_variables] == [fresh.head.name] * 2


def test_summary_of_a_model_counts_parameters(tiny_encoder):
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                      policy=pl.freezing.GradualUnfreeze(every_epochs=2))
    lines = ft.policy.summary(ft).splitlines()
    assert lines[0].split() == ["stage", "epochs", "embeddings", "block_0", "block_1", "head",
                                "trainable"]
    assert lines[1].split()[0] == "params"
    head = 32 * 6 + 6
    assert lines[2].split() == ["0", "0-1", "frozen", "frozen", "frozen", "train", str(head),
                                str(head)]
    total = sum(int(np.prod(v.shape)) for v in ft.weights)
    assert lines[1].split()[-1] == f"{total / 1000:.1f}k" == lines[-1].split()[-1]
    assert lines[-1].split()[:2] == ["3", "6+"]
    assert len(lines) == 2 + 4


def test_policy_and_transform_configs_round_trip():
    for policy in (pl.freezing.GradualUnfreeze(3), pl.freezing.LayerwiseLRDecay(0.7, 1),
                   FreezePolicy([Stage(0, "all", train_only={"backbone": ["bias"]})]),
                   pl.freezing.BitFit(), pl.freezing.LoRA(4, 8.0, ["query"]),
                   pl.freezing.Adapters(4, ["transformer_layer_1"])):
        restored = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(policy))
        assert type(restored) is type(policy)
        assert restored.get_config() == policy.get_config()
        if isinstance(policy, FreezePolicy):
            groups = ["embeddings", "block_0", "block_1", "head"]
            assert restored.summary(groups) == policy.summary(groups)


@pytest.mark.parametrize(
    "build, error, fragment",
    [
        (lambda: pl.freezing.GradualUnfreeze(every_epochs=0), ValueError, "every_epochs"),
        (lambda: pl.freezing.LayerwiseLRDecay(decay=1.5), ValueError, "decay"),
        (lambda: pl.freezing.LoRA(rank=0), ValueError, "rank"),
        (lambda: pl.freezing.LoRA(targets="query"), ValueError, "targets"),
        (lambda: pl.freezing.Adapters(bottleneck=0), ValueError, "bottleneck"),
        (lambda: FreezePolicy([Stage(0, "all", train_only={"backbone": "bias"})]),
         ValueError, "train_only"),
        (lambda: FreezePolicy([Stage(0, "all", train_only={"backbone": ["("]})]),
         ValueError, "invalid pattern"),
    ],
)
def test_bad_policy_arguments(build, error, fragment):
    with pytest.raises(error, match=fragment):
        build()


def test_lora_and_adapter_targets_that_match_nothing(tiny_encoder):
    with pytest.raises(ValueError, match="match no layer.*query"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                     policy=pl.freezing.LoRA(targets=["nothing_here"]))
    with pytest.raises(ValueError, match="never called|no layer to adapt"):
        pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6),
                     policy=pl.freezing.Adapters(targets=["query"]))


def test_user_named_groups_for_any_keras_model(tmp_path):
    import tensorflow as tf

    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="low_1")(inputs)
    x = keras.layers.Dense(8, name="low_2")(x)
    x = keras.layers.Dense(8, name="top")(x)
    backbone = keras.Model(inputs, x)
    automatic = pl.FineTuner(backbone, pl.heads.Classifier(3))
    assert list(automatic.layer_groups) == ["low_1", "low_2", "top", "head"]
    ft = pl.FineTuner(backbone, pl.heads.Classifier(3), groups={"low": "low_.*", "top": "top"},
                      policy=FreezePolicy([Stage(0, ["top", "head"])]))
    assert list(ft.layer_groups) == ["low", "top", "head"]
    ft.compile(learning_rate=1e-2)
    data = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((data, np.arange(32) % 3)).batch(8)
    before = snapshot(ft)
    ft.fit(ds, epochs=1, verbose=0)
    assert {p.split("/")[0] for p in changed(before, ft)} == {"top", ft.head.name}
    ft.save(tmp_path / "grouped.keras")
    assert list(keras.saving.load_model(tmp_path / "grouped.keras").layer_groups) == \
        ["low", "top", "head"]
    with pytest.raises(ValueError, match="match no top-level layer"):
        pl.FineTuner(backbone, pl.heads.Classifier(3), groups={"low": "nothing"})
    with pytest.raises(ValueError, match="match no group"):
        pl.FineTuner(backbone, pl.heads.Classifier(3), groups={"low": "low_.*"})
    with pytest.raises(ValueError, match="one group"):
        pl.FineTuner(backbone, pl.heads.Classifier(3), groups={"a": "low_.*", "b": ".*"})


@pytest.mark.slow
def test_a_saved_fine_tuner_reloads_compiled_with_its_optimizer_state(tiny_encoder, labeled,
                                                                      tmp_path):
    import warnings

    ft, _ = fit(pl.freezing.FreezeThenUnfreeze(1), tiny_encoder, labeled, epochs=2)
    ft.save(tmp_path / "ft.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compile() was not called" warning
        restored = keras.saving.load_model(tmp_path / "ft.keras")
    assert restored.compiled and type(restored.optimizer).__name__ == "AdamW"
    assert int(restored.optimizer.iterations) == int(ft.optimizer.iterations) > 0
    for a, b in zip(restored.optimizer.variables, ft.optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    restored.fit(labeled(), epochs=3, initial_epoch=2, verbose=0)  # training resumes


@pytest.mark.slow
def test_stages_can_begin_at_a_step(tiny_encoder, labeled):
    policy = FreezePolicy([Stage(0, ["head"]), Stage(3, "all")], unit="step")
    assert policy.summary(["block_0", "head"]).splitlines()[0].split()[:2] == ["stage", "steps"]
    restored = FreezePolicy.from_config(policy.get_config())
    assert restored.unit == "step"
    ft = pl.FineTuner(tiny_encoder(), pl.heads.Classifier(6), policy=policy)
    ft.compile(learning_rate=1e-2)
    moved = []

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.before = np.array(ft.backbone.token_embedding.embeddings)

        def on_train_batch_end(self, batch, logs=None):
            moved.append(not np.array_equal(
                self.before, np.array(ft.backbone.token_embedding.embeddings)))

    ft.fit(labeled(n=64, batch_size=16), epochs=1, callbacks=[Watch()], verbose=0)
    assert moved == [False, False, False, True]  # steps 0-2 frozen, step 3 trains
    assert ft.current_stage == 1
    with pytest.raises(ValueError, match="unit"):
        FreezePolicy([Stage(0, "all")], unit="batch")
