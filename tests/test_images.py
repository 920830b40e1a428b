"""Image data, image backbones and the image objectives, on real Fashion-MNIST."""

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from conftest import weights_of


@pytest.fixture(scope="module")
def fm():
    return pl.datasets.fashion_mnist()


def small_convnet(**kwargs):
    keras.utils.set_random_seed(0)
    return pl.backbones.ConvNet(widths=kwargs.pop("widths", (8, 16)), **kwargs)


# === Data ===
def test_fashion_mnist_splits_are_balanced_and_disjoint(fm):
    assert (len(fm.train), len(fm.validation), len(fm.test)) == (18000, 2000, 5000)
    assert np.bincount(fm.train.labels).tolist() == [1800] * 10
    assert np.bincount(fm.test.labels).tolist() == [500] * 10
    digest = lambda images: {hashlib.md5(i.tobytes()).hexdigest() for i in images}  # noqa: E731
    assert not digest(fm.train.images) & digest(fm.validation.images)
    assert fm.unlabeled is fm.train.images and fm.train.images.dtype == np.uint8


def test_classes_relabels_in_the_given_order(fm):
    target = fm.test.classes([7, 5])
    assert target.class_names == ("sneaker", "sandal") and len(target) == 1000
    np.testing.assert_array_equal(target.images[target.labels == 0],
                                  fm.test.images[fm.test.labels == 7])
    with pytest.raises(ValueError, match="keep"):
        fm.test.classes([3, 3])
    with pytest.raises(ValueError, match="keep"):
        fm.test.classes([10])


def test_sample_is_stratified_and_seeded(fm):
    few = fm.train.sample(100, seed=3)
    assert np.bincount(few.labels).tolist() == [10] * 10
    np.testing.assert_array_equal(few.images, fm.train.sample(100, seed=3).images)
    with pytest.raises(ValueError, match="`n`"):
        fm.train.sample(0)


def test_image_dataset_scales_adds_channels_and_pairs_labels(fm):
    part = fm.test.sample(20, seed=0)
    x, y = next(iter(pl.data.image_dataset(part.images, part.labels, batch_size=20,
                                           shuffle=False)))
    assert x.shape == (20, 28, 28, 1) and x.dtype == tf.float32
    np.testing.assert_allclose(x.numpy()[..., 0], part.images / 255, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), part.labels)
    floats = np.random.rand(4, 8, 8, 3).astype("float32")
    np.testing.assert_allclose(next(iter(pl.data.image_dataset(floats, shuffle=False))), floats)


def test_augmentation_is_redrawn_every_epoch(fm):
    images = fm.test.images[:8]
    ds = pl.data.image_dataset(images, batch_size=8, shuffle=False, augment=[
        keras.layers.RandomTranslation(0.2, 0.2, fill_mode="constant", seed=1)])
    first, second = (next(iter(ds)).numpy() for _ in range(2))
    assert not np.allclose(first, second)
    assert not np.allclose(first[..., 0], images / 255)


@pytest.mark.parametrize("kwargs, match", [
    (dict(images=np.zeros((4, 5))), "images"),
    (dict(images=np.zeros((0, 4, 4))), "empty"),
    (dict(images=np.zeros((4, 4, 4), "int64")), "uint8"),
    (dict(images=np.zeros((4, 4, 4), "uint8"), labels=[0, 1]), "one integer per image"),
    (dict(images=np.zeros((4, 4, 4), "uint8"), augment="flip"), "augment"),
])
def test_image_dataset_rejects_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pl.data.image_dataset(**kwargs)


# === Backbones ===
def test_convnet_groups_cover_every_weight_and_config_round_trips():
    net = small_convnet(blocks_per_stage=2)
    grouped = {id(w) for layers in net.layer_groups.values() for layer in layers
               for w in layer.weights}
    assert grouped == {id(w) for w in net.weights}
    assert list(net.layer_groups) == ["stem", "stage_0", "stage_1"]
    batch_norms = [layer for layer in net._flatten_layers()
                   if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms and all(layer.momentum == 0.9 for layer in batch_norms)
    clone = pl.backbones.ConvNet.from_config(net.get_config())
    clone.set_weights(net.get_weights())
    x = np.random.rand(2, 28, 28, 1).astype("float32")
    np.testing.assert_allclose(clone(x)["pooled_output"], net(x)["pooled_output"], atol=1e-6)


def test_convnet_group_norm_has_no_batch_statistics():
    net = small_convnet(norm="group")
    assert not net.non_trainable_weights
    assert net(np.zeros((1, 28, 28, 1), "float32"))["feature_map"].shape == (1, 14, 14, 16)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=()), "widths"), (dict(widths=(8, 0)), "widths"),
    (dict(norm="layer"), "norm"), (dict(norm="group", widths=(12,)), "multiple of 8"),
    (dict(input_shape=(28, 28)), "input_shape"), (dict(norm_momentum=1.0), "norm_momentum"),
])
def test_convnet_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pl.backbones.ConvNet(**kwargs)


def test_vision_encoder_patches_groups_and_errors():
    vit = pl.backbones.VisionEncoder(patch_size=7, num_layers=2, hidden_dim=16, num_heads=2)
    out = vit(np.zeros((3, 28, 28, 1), "float32"))
    assert out["sequence_output"].shape == (3, 16, 16) and out["pooled_output"].shape == (3, 16)
    grouped = {id(w) for layers in vit.layer_groups.values() for layer in layers
               for w in layer.weights}
    assert grouped == {id(w) for w in vit.weights}
    with pytest.raises(ValueError, match="divisible by `patch_size`"):
        pl.backbones.VisionEncoder(patch_size=5)


def mobilenet():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                          weights=None, alpha=0.35)


def moving_statistics(model):
    return [np.array(v) for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("policy", [pl.freezing.FreezeThenUnfreeze(1),
                                    pl.freezing.GradualUnfreeze(every_epochs=1),
                                    pl.freezing.LayerwiseLRDecay(0.7)],
                         ids=lambda p: type(p).__name__)
@pytest.mark.slow
def test_keras_applications_model_fine_tunes_with_frozen_batchnorm(fm, policy):
    app = mobilenet()
    ft = pl.FineTuner(app, pl.heads.Classifier(3), policy=policy)
    groups = list(ft.layer_groups)
    assert groups[:3] == ["stem", "block_1", "block_2"] and groups[-3:] == [
        "block_16", "top", "head"]  # its blocks, not its 104 layers
    assert ft.batchnorm == "frozen"  # the default for a model not built by pretrainlib
    subset = fm.train.classes([0, 1, 7])
    images = np.repeat(subset.images[:48, :, :, None], 3, axis=-1)
    data = tf.data.Dataset.from_tensor_slices((
        tf.image.resize(images / 255, (32, 32)), subset.labels[:48])).batch(16)
    statistics, block_16 = moving_statistics(app), weights_of(ft.layer_groups["block_16"])
    ft.compile(learning_rate=3e-3)
    history = ft.fit(data, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][-1] < history.history["loss"][0], history.history
    # The top block trained by the last epoch; BatchNorm never moved its statistics
    # or trained its scale and offset.
    after = weights_of(ft.layer_groups["block_16"])
    trained = [not np.allclose(a, b) for a, b in zip(block_16, after)]
    bn_params = [v for layer in app.layers if isinstance(layer, keras.layers.BatchNormalization)
                 for v in (layer.gamma, layer.beta)]
    assert any(trained) and not any(v.trainable for v in bn_params)
    assert all(np.array_equal(a, b) for a, b in zip(statistics, moving_statistics(app)))


@pytest.mark.slow
def test_batchnorm_policy_trains_with_its_group_and_is_saved():
    app = mobilenet()
    ft = pl.FineTuner(app, pl.heads.Classifier(3), policy=pl.freezing.FullFineTune(),
                      batchnorm="policy")
    statistics = moving_statistics(app)
    ft.compile(learning_rate=1e-3)
    x = np.random.default_rng(0).random((8, 32, 32, 3), "float32")
    ft.fit(tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4), epochs=1,
           verbose=0)
    assert not all(np.array_equal(a, b) for a, b in zip(statistics, moving_statistics(app)))
    assert pl.FineTuner.from_config(ft.get_config()).batchnorm == "policy"
    with pytest.raises(ValueError, match="batchnorm"):
        pl.FineTuner(mobilenet(), pl.heads.Classifier(3), batchnorm="train")
    assert pl.FineTuner(small_convnet(), pl.heads.Classifier(3)).batchnorm == "policy"


# === Autoencoder ===
def masked_transform(objective, images):
    objective.validate_backbone(small_convnet())
    return objective.transform(tf.constant(images))


def test_mask_hides_whole_patches_at_the_exact_ratio(fm):
    images = fm.test.images[:16, :, :, None] / 255
    objective = pl.objectives.Autoencoder(mask_ratio=0.3, patch_size=4, mask_value=0.5)
    corrupted, clean, weights = (t.numpy() for t in masked_transform(objective, images))
    np.testing.assert_allclose(clean, images, atol=1e-6)
    patches = weights.reshape(16, 7, 4, 7, 4)
    assert (patches == patches[:, :, :1, :, :1]).all()  # constant within each patch
    assert (patches[:, :, 0, :, 0].sum(axis=(1, 2)) == round(0.3 * 49)).all()
    hidden = weights.astype(bool)
    assert (corrupted[hidden] == 0.5).all()
    np.testing.assert_allclose(corrupted[~hidden], images[~hidden], atol=1e-6)
    again = objective.transform(tf.constant(images))[2].numpy()
    assert not np.array_equal(again, weights)  # redrawn every call


def test_denoising_noise_has_the_promised_statistics(fm):
    images = (fm.test.images[:64, :, :, None] / 255).astype("float32")
    gauss = pl.objectives.Autoencoder(noise="gaussian", noise_std=0.2)
    noisy, clean = masked_transform(gauss, images)
    assert abs(float(np.std(noisy - clean)) - 0.2) < 0.005
    drop = pl.objectives.Autoencoder(noise="dropout", dropout_rate=0.3)
    dropped, _ = masked_transform(drop, np.ones((64, 28, 28, 1), "float32"))
    assert abs(float(np.mean(dropped.numpy() == 0)) - 0.3) < 0.01


def test_vector_autoencoder_masks_exact_feature_counts_and_learns():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    encoder = keras.Model(inputs, keras.layers.Dense(16, activation="relu")(inputs))
    objective = pl.objectives.Autoencoder(mask_ratio=0.25, decoder_dim=32)
    pre = pl.Pretrainer(encoder, objective)
    corrupted, clean, weights = objective.transform(tf.ones((5, 12)))
    assert (weights.numpy().sum(axis=1) == 3).all()
    assert (corrupted.numpy()[weights.numpy() == 1] == 0).all()
    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(512, 3)) @ rng.normal(size=(3, 12))).astype("float32")
    pre.compile(learning_rate=3e-3)
    history = pre.fit(tf.data.Dataset.from_tensor_slices(vectors).batch(32), epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_reconstruction_loss_and_metrics_count_masked_pixels_only():
    clean = np.zeros((2, 4, 4, 1), "float32")
    predicted = clean.copy()
    predicted[:, :2] = 0.1  # errors only in the top half
    weights = np.zeros((2, 4, 4), "float32")
    weights[:, 2:] = 1  # the loss looks at the bottom half
    loss = pl.objectives.autoencoder.ReconstructionError()
    assert float(loss(clean, predicted, sample_weight=weights)) == 0
    assert float(loss(clean, predicted, sample_weight=1 - weights)) == pytest.approx(0.01)
    psnr = pl.training.PSNR()
    psnr.update_state(clean, predicted, sample_weight=1 - weights)
    assert float(psnr.result()) == pytest.approx(20.0, abs=1e-4)


@pytest.mark.slow
def test_masked_image_modeling_loss_falls_on_real_images(fm):
    keras.utils.set_random_seed(0)
    net = small_convnet()
    pre = pl.Pretrainer(net, pl.objectives.Autoencoder(mask_ratio=0.5))
    pre.compile(learning_rate=3e-3)
    data = pl.data.image_dataset(fm.unlabeled[:1024], batch_size=64, seed=0)
    history = pre.fit(data, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    assert history.history["psnr"][-1] > history.history["psnr"][0]
    assert pre.backbone is net and not any("decoder" in w.path for w in net.weights)


def test_vision_encoder_pretrains_with_masked_patches(fm):
    keras.utils.set_random_seed(0)
    vit = pl.backbones.VisionEncoder(patch_size=7, num_layers=1, hidden_dim=32, num_heads=2)
    pre = pl.Pretrainer(vit, pl.objectives.Autoencoder(patch_size=7, mask_ratio=0.25))
    pre.compile(learning_rate=3e-3)
    history = pre.fit(pl.data.image_dataset(fm.unlabeled[:512], batch_size=64), epochs=2,
                      verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_objectives_reject_backbones_they_cannot_train(tiny_encoder):
    with pytest.raises(ValueError, match="one input tensor"):
        pl.Pretrainer(tiny_encoder(), pl.objectives.Autoencoder())
    with pytest.raises(ValueError, match="token_ids"):
        pl.Pretrainer(small_convnet(), pl.objectives.MaskedLM(vocab_size=10, mask_id=3))
    with pytest.raises(ValueError, match="ImageClassification needs"):
        pl.Pretrainer(tiny_encoder(), pl.objectives.ImageClassification(4))
    vectors = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="image backbone"):
        pl.Pretrainer(vectors, pl.objectives.ImageClassification(4))
    token_model = keras.Sequential([keras.Input((8,), dtype="int32"), keras.layers.Embedding(9, 4)])
    with pytest.raises(ValueError, match="MaskedLM"):
        pl.Pretrainer(token_model, pl.objectives.Autoencoder())
    with pytest.raises(ValueError, match="patch_size"):
        pl.Pretrainer(small_convnet(), pl.objectives.Autoencoder(patch_size=5))


@pytest.mark.parametrize("kwargs, match", [
    (dict(noise="blur"), "noise"), (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(patch_size=0), "patch_size"), (dict(noise_std=0), "noise_std"),
    (dict(decoder_dim=-1), "decoder_dim"), (dict(mask_value="gray"), "mask_value"),
])
def test_autoencoder_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pl.objectives.Autoencoder(**kwargs)


# === Supervised pretraining and transfer ===
@pytest.mark.slow
def test_image_classification_learns_the_source_and_drops_its_head(fm):
    keras.utils.set_random_seed(0)
    source = fm.train.classes([0, 1, 2, 3, 4]).sample(640, seed=0)
    net = small_convnet(widths=(16, 32))
    objective = pl.objectives.ImageClassification(5, label_smoothing=0.1)
    pre = pl.Pretrainer(net, objective)
    pre.compile(learning_rate=3e-3)
    history = pre.fit(pl.data.image_dataset(source.images, source.labels, batch_size=64),
                      epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.75 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.65  # chance: 0.2
    assert not any("source_logits" in w.path for w in net.weights)
    with pytest.raises(ValueError, match="labeled batches"):
        objective.transform(tf.zeros((2, 28, 28, 1)))
    reloaded = pl.objectives.ImageClassification.from_config(objective.get_config())
    assert reloaded.get_config() == objective.get_config()


def test_frozen_convnet_keeps_batch_norm_statistics(fm):
    net = small_convnet()
    ft = pl.FineTuner(net, pl.heads.Classifier(10), policy=pl.freezing.FeatureExtraction())
    before = [np.array(w) for w in net.non_trainable_weights]
    part = fm.train.sample(64, seed=0)
    ft.compile(learning_rate=1e-2)
    ft.fit(pl.data.image_dataset(part.images, part.labels, batch_size=16), epochs=1, verbose=0,
           cache_features=False)
    for b, w in zip(before, net.non_trainable_weights):
        np.testing.assert_array_equal(b, np.array(w))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=1), "at least 2"), (dict(num_classes=0), "num_classes"),
    (dict(num_classes=3, dropout=1.5), "dropout"),
    (dict(num_classes=3, label_smoothing=-0.1), "label_smoothing"),
])
def test_image_classification_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pl.objectives.ImageClassification(**kwargs)


# === Regression head ===
def test_regressor_learns_how_much_of_a_real_image_is_ink(fm, tmp_path):
    ink = lambda images: (images > 64).mean(axis=(1, 2))  # noqa: E731
    images, mean, std = fm.train.images[:256], ink(fm.train.images).mean(), ink(
        fm.train.images).std()
    target = ((ink(images) - mean) / std).astype("float32")  # standardized
    ft = pl.FineTuner(small_convnet(), pl.heads.Regressor(dropout=0.0),
                      policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=3e-3)
    data = pl.data.image_dataset(images, target, batch_size=32, seed=0)
    history = ft.fit(data, epochs=4, verbose=0)
    assert set(history.history) >= {"loss", "mae", "rmse"}
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0], history.history
    x = images[:8]
    assert ft.predict(x, verbose=0).shape == (8,)
    ft.save(tmp_path / "regressor.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "regressor.keras")
                               .predict(x, verbose=0), ft.predict(x, verbose=0), atol=1e-5)
    test = fm.test.images[:256]
    report = pl.Evaluator(metrics=["mae", "rmse", "r2"]).evaluate(
        ft, pl.data.image_dataset(test, ((ink(test) - mean) / std).astype("float32"),
                                  shuffle=False))
    assert set(report.metrics) == {"mae", "rmse", "r2"} and report.metrics["r2"] > 0.5, report


def test_float_labels_go_to_a_regressor_not_a_classifier(fm):
    ft = pl.FineTuner(small_convnet(), pl.heads.Classifier(10))
    ft.compile()
    data = pl.data.image_dataset(fm.train.images[:32], np.ones(32, "float32"))
    with pytest.raises(ValueError, match="Regressor"):
        ft.fit(data, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="finite"):
        pl.data.image_dataset(fm.train.images[:2], np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="one target .* per image \\(2\\)"):
        pl.data.image_dataset(fm.train.images[:2], np.zeros(3, "float32"))
    with pytest.raises(ValueError, match="outputs"):
        pl.heads.Regressor(outputs=0)
