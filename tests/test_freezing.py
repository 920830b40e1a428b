import keras
import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.freezing import FreezePolicy, Stage
from conftest import weights_of


def fine_tuner(tiny_encoder, policy, num_classes=6):
    return pl.FineTuner(tiny_encoder(), pl.heads.Classifier(num_classes), policy=policy)


def test_feature_extraction_leaves_backbone_bit_identical(tiny_encoder, labeled):
    ft = fine_tuner(tiny_encoder, pl.freezing.FeatureExtraction())
    backbone_before = [np.array(w) for w in ft.backbone.get_weights()]
    head_before = weights_of([ft.head])
    ft.compile(learning_rate=1e-2)
    ft.fit(labeled(), epochs=2, verbose=0)
    for a, b in zip(backbone_before, ft.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, weights_of([ft.head])))


@pytest.mark.slow
def test_freeze_then_unfreeze_trains_backbone_after_the_switch(tiny_encoder, labeled):
    ft = fine_tuner(tiny_encoder, pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
    ft.compile(learning_rate=1e-3)
    ds = labeled()
    before = [np.array(w) for w in ft.backbone.get_weights()]
    ft.fit(ds, epochs=1, verbose=0)
    for a, b in zip(before, ft.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)  # stage 0: frozen
    ft.fit(ds, epochs=2, initial_epoch=1, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, ft.backbone.get_weights())]
    assert all(changed), "every backbone variable must train after unfreezing"
    assert ft.current_stage == 1


@pytest.mark.slow
def test_unfreezing_keeps_head_optimizer_state_and_starts_backbone_fresh(tiny_encoder, labeled):
    ft = fine_tuner(tiny_encoder, pl.freezing.FreezeThenUnfreeze(freeze_epochs=2))
    ft.compile(learning_rate=1e-3)
    ds = labeled()
    steps = int(ds.cardinality())
    optimizer = ft.optimizer

    class Probe(keras.callbacks.Callback):
        seen = {}

        def on_epoch_end(self, epoch, logs=None):
            head_kernel = ft.head.logits.kernel
            self.seen[epoch] = {
                "head_step": float(optimizer._steps[optimizer._get_variable_index(head_kernel)]),
                "head_momentum": np.array(
                    optimizer._momentums[optimizer._get_variable_index(head_kernel)]),
                "backbone_step": float(optimizer._steps[optimizer._get_variable_index(
                    ft.backbone.token_embedding.embeddings)]),
            }

    ft.fit(ds, epochs=3, callbacks=[Probe()], verbose=0)
    seen = Probe.seen
    assert seen[1]["head_step"] == 2 * steps and seen[1]["backbone_step"] == 0
    # After the switch the head continues its count; the backbone counts from zero.
    assert seen[2]["head_step"] == 3 * steps and seen[2]["backbone_step"] == steps
    assert np.abs(seen[1]["head_momentum"]).sum() > 0


def test_frozen_batchnorm_statistics_do_not_change(labeled):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="dense")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inputs, x)
    ft = pl.FineTuner(backbone, pl.heads.Classifier(3), policy=pl.freezing.FeatureExtraction())
    ft.compile(learning_rate=1e-2)
    data = np.random.default_rng(0).normal(3.0, 2.0, (64, 4)).astype("float32")
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((data, np.arange(64) % 3)).batch(16)
    before = [np.array(w) for w in backbone.get_layer("bn").get_weights()]
    ft.fit(ds, epochs=2, verbose=0)
    for a, b in zip(before, backbone.get_layer("bn").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_lr_multiplier_scales_sgd_updates_exactly(tiny_encoder, labeled):
    ds = labeled(n=16, batch_size=16, shuffle=False)
    encoder = tiny_encoder(dropout=0.0)
    initial = encoder.get_weights()
    updates = {}
    for multiplier in (0.25, 1.0):
        encoder.set_weights(initial)
        keras.utils.set_random_seed(0)
        policy = FreezePolicy([Stage(0, "all", {"embeddings": multiplier})])
        ft = pl.FineTuner(encoder, pl.heads.Classifier(6, dropout=0.0), policy=policy)
        ft.compile(optimizer=pl.training.SGD(learning_rate=0.1))
        position = ft.backbone.position_embedding.position_embeddings
        block = ft.backbone.transformer_layers[0]._feedforward_output_dense.kernel
        before = np.array(position), np.array(block)
        ft.fit(ds, epochs=1, verbose=0)
        updates[multiplier] = (np.array(position) - before[0], np.array(block) - before[1])
    moved = np.abs(updates[1.0][0]) > 1e-7
    assert moved.sum() > 100
    ratio = np.linalg.norm(updates[0.25][0]) / np.linalg.norm(updates[1.0][0])
    assert ratio == pytest.approx(0.25, rel=1e-4)
    np.testing.assert_allclose(updates[0.25][0], 0.25 * updates[1.0][0], atol=1e-7)
    np.testing.assert_allclose(updates[0.25][1], updates[1.0][1], rtol=1e-5, atol=1e-9)


def test_policy_summary_and_config_round_trip():
    policy = pl.freezing.FreezeThenUnfreeze(freeze_epochs=2, backbone_lr_multiplier=0.5)
    groups = ["embeddings", "block_0", "block_1", "head"]
    table = policy.summary(groups)
    assert table.splitlines()[1].split() == ["0", "0-1", "frozen", "frozen", "frozen", "train"]
    assert table.splitlines()[2].split() == ["1", "2+", "x0.5", "x0.5", "x0.5", "train"]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(policy))
    assert isinstance(restored, pl.freezing.FreezeThenUnfreeze)
    assert restored.summary(groups) == table
    custom = FreezePolicy([Stage(0, ["head"]), Stage(3, [-1, "head"], {-1: 0.1})])
    again = FreezePolicy.from_config(custom.get_config())
    assert again.summary(groups) == custom.summary(groups)
    assert again.resolve(1, groups) == {"embeddings": 0.0, "block_0": 0.0, "block_1": 0.1,
                                        "head": 1.0}


def test_unknown_group_is_a_clear_error(tiny_encoder):
    policy = FreezePolicy([Stage(0, ["head", "block_7"])])
    with pytest.raises(ValueError, match="block_7.*groups are"):
        fine_tuner(tiny_encoder, policy)


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: FreezePolicy([]), "stages"),
        (lambda: FreezePolicy([Stage(1, "all")]), "epoch 0"),
        (lambda: FreezePolicy([Stage(0, "all"), Stage(0, "all")]), "increasing"),
        (lambda: FreezePolicy([Stage(0, "all", {"head": -1})]), "lr_multipliers"),
        (lambda: pl.freezing.FreezeThenUnfreeze(freeze_epochs=0), "freeze_epochs"),
        (lambda: pl.freezing.FreezeThenUnfreeze(backbone_lr_multiplier=2), "backbone_lr"),
    ],
)
def test_bad_policies_are_rejected(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()
