"""The two-view image objectives (SimCLR, BYOL, SimSiam) and their augmentation: the
losses against NumPy, views that differ and replay, the stop-gradient, the moving-
average target, and the bad inputs. (Fit, save/load and MirroredStrategy: the
protocol harness; kill-and-resume of BYOL's target: tests/test_resume.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib import keras_compat, randomness
from pretrainlib.objectives.byol import PredictionLoss
from pretrainlib.objectives.simclr import ContrastiveAccuracy, NTXentLoss


def images(n=16):
    return pl.datasets.fashion_mnist().train.sample(n, seed=0).images[..., None] / 255.0


def net():
    return pl.backbones.ConvNet(widths=(4, 8), blocks_per_stage=1)


def nt_xent_reference(z, temperature):
    """SimCLR's loss written out: 2N views, each classifying its partner among the
    other 2N - 1 by cosine similarity / temperature; mean over an image's two views."""
    n = len(z)
    views = z.reshape(2 * n, -1)
    views = views / np.linalg.norm(views, axis=1, keepdims=True)
    per_view = []
    for i in range(2 * n):
        partner = i + 1 if i % 2 == 0 else i - 1
        logits = np.array([views[i] @ views[j] / temperature for j in range(2 * n) if j != i])
        others = [j for j in range(2 * n) if j != i]
        per_view.append(-logits[others.index(partner)] + np.log(np.exp(logits).sum()))
    return np.array(per_view).reshape(n, 2).mean(1)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_equals_a_numpy_reference_on_fixed_embeddings(temperature):
    z = np.random.default_rng(0).normal(size=(6, 2, 5))
    loss = NTXentLoss(temperature, reduction=None)(np.zeros(6), z.astype("float32"))
    np.testing.assert_allclose(np.asarray(loss), nt_xent_reference(z, temperature), rtol=1e-5)
    reduced = NTXentLoss(temperature)(np.zeros(6), z.astype("float32"))
    np.testing.assert_allclose(float(reduced), nt_xent_reference(z, temperature).mean(),
                               rtol=1e-5)


def test_contrastive_accuracy_counts_views_whose_nearest_view_is_their_partner():
    z = np.array([[[1, 0, 0], [1, 0.1, 0]], [[0, 1, 0], [0, 0, 1]]], "float32")
    metric = ContrastiveAccuracy()
    metric.update_state(np.zeros(2), z)
    # Image 0's two views find each other; image 1's are orthogonal, and each is at
    # least as near to a view of image 0 as to its partner: half are right.
    assert float(metric.result()) == pytest.approx(0.5)


def test_byol_loss_is_two_minus_twice_the_cosine_of_prediction_and_the_other_target():
    rng = np.random.default_rng(1)
    out = rng.normal(size=(3, 2, 2, 4)).astype("float32")
    unit = out / np.linalg.norm(out, axis=-1, keepdims=True)
    cos_0 = (unit[:, 0, 0] * unit[:, 1, 1]).sum(-1)  # view 0's prediction, view 1's target
    cos_1 = (unit[:, 1, 0] * unit[:, 0, 1]).sum(-1)
    expected = ((2 - 2 * cos_0) + (2 - 2 * cos_1)) / 2
    loss = PredictionLoss(reduction=None)(np.zeros(3), out)
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-5)


def views(objective, batch, seed):
    with randomness.batch_seed(tf.constant([seed, 0], "int64")):
        return np.asarray(objective.transform(tf.constant(batch, "float32"))[0])


def test_the_two_views_differ_and_replay_with_the_seed():
    objective = pl.objectives.SimCLR()
    objective.validate_backbone(net())  # picks the default augmentation for 28x28x1
    batch = images(8)
    first, again, other = views(objective, batch, 3), views(objective, batch, 3), \
        views(objective, batch, 4)
    assert first.shape == (8, 2, 28, 28, 1)
    assert not np.allclose(first[:, 0], first[:, 1])  # two different views of each image
    np.testing.assert_array_equal(first, again)  # the same seed: the same views
    assert not np.allclose(first, other)
    assert 0.0 <= first.min() and first.max() <= 1.0 + 1e-6


def test_default_augmentation_fits_the_images_channels():
    grey = [type(x).__name__ for x in pl.data.contrastive_augmentation((28, 28, 1))]
    rgb = [type(x).__name__ for x in pl.data.contrastive_augmentation((32, 32, 3))]
    assert grey == ["RandomResizedCrop", "RandomFlip", "RandomBrightness", "RandomContrast"]
    assert rgb == ["RandomResizedCrop", "RandomFlip", "RandomColorJitter", "RandomGrayscale"]
    batch = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    with randomness.batch_seed(tf.constant([0, 0], "int64")):
        out = pl.data.image.augmented(tf.constant(batch),
                                      pl.data.contrastive_augmentation((32, 32, 3)))
    assert out.shape == (4, 32, 32, 3)


def test_flip_and_shift_is_the_consistency_weak_view_and_moves_images_within_its_shift():
    from pretrainlib.semi.views import default_weak_layers

    def configs(layers):
        return [{k: v for k, v in layer.get_config().items() if k != "name"}
                for layer in layers]

    assert configs(pl.data.flip_and_shift()) == configs(default_weak_layers())
    assert [type(x).__name__ for x in pl.data.flip_and_shift(0.0, flip=False)] == []
    image = np.zeros((64, 16, 16, 1), "float32")
    image[:, 6:10, 6:10] = 1.0  # a centred square
    with randomness.batch_seed(tf.constant([0, 0], "int64")):
        out = np.asarray(pl.data.image.augmented(tf.constant(image),
                                                 pl.data.flip_and_shift(0.125)))
    rows = [np.nonzero(o[..., 0].any(axis=1))[0] for o in out]
    assert {int(r[0]) for r in rows} - {6} and all(4 <= r[0] <= 8 for r in rows)  # ±2 px


def test_random_resized_crop_draws_crops_within_its_scale_and_resizes_in_inference():
    image = np.zeros((1, 40, 40, 1), "float32")
    image[0, :20] = 1.0  # top half white
    crop = pl.data.RandomResizedCrop(40, 40, scale=(0.1, 0.2), ratio=(1.0, 1.0), seed=0)
    crops = np.asarray(crop(np.repeat(image, 64, 0), training=True))
    assert crops.shape == (64, 40, 40, 1)
    # Small crops (10-20 % of the area) mostly land all-white or all-black.
    uniform = np.mean([c.min() == c.max() for c in crops])
    assert uniform > 0.3
    np.testing.assert_allclose(np.asarray(crop(image, training=False)), image, atol=1e-6)
    whole = pl.data.RandomResizedCrop(40, 40, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(np.asarray(whole(image, training=True)), image, atol=1e-5)


def test_simsiam_stop_gradient_really_stops_it():
    """SimSiam's targets are the online projections: with the stop-gradient the loss's
    gradient equals the one with the targets fed in as constants."""
    keras.utils.set_random_seed(0)
    model = pl.Pretrainer(net(), pl.objectives.SimSiam(projection_dim=8), seed=0)
    x = next(iter(model._evaluation_view(pl.data.image_dataset(images(8), shuffle=False))))[0]
    loss = PredictionLoss()
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        out = model(x, training=False)
        value = loss(np.zeros(8), out)
    through_model = tape.gradient(value, variables)
    constant_targets = tf.constant(out[:, :, 1])
    with tf.GradientTape() as tape:
        out = model(x, training=False)
        fixed = tf.stack([out[:, :, 0], constant_targets], axis=2)
        value = loss(np.zeros(8), fixed)
    with_constants = tape.gradient(value, variables)
    for a, b in zip(through_model, with_constants):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-7)
    # ... and without it the gradient would differ: the targets depend on the weights.
    with tf.GradientTape() as tape:
        encoder = model.objective.online
        flat = tf.reshape(x, (-1, 28, 28, 1))
        projections = tf.reshape(encoder(flat, training=False), (8, 2, -1))
        out = model(x, training=False)
        value = loss(np.zeros(8), tf.stack([out[:, :, 0], projections], axis=2))
    leaking = tape.gradient(value, variables)
    assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(leaking, with_constants)) > 1e-4


@pytest.mark.slow
def test_byol_target_is_a_moving_average_of_the_online_network_after_each_step():
    keras.utils.set_random_seed(0)
    objective = pl.objectives.BYOL(target_decay=0.75, projection_dim=8)
    model = pl.Pretrainer(net(), objective, seed=0)
    model.compile(learning_rate=1e-2)
    target, online = objective.target, objective.online
    assert not target.trainable and all(not v.trainable for v in target.weights)
    assert [v.shape for v in target.weights] == [v.shape for v in online.weights]
    for t, o in zip(target.weights, online.weights):  # it starts as a copy
        np.testing.assert_array_equal(t.numpy(), o.numpy())
    data = pl.data.image_dataset(images(16), batch_size=16, shuffle=False)
    before = [t.numpy() for t in target.weights]
    model.fit(data, epochs=1, verbose=0)  # one step
    averaged = 0
    for b, t, o in zip(before, target.weights, online.weights):
        if "moving" in t.path:  # BatchNorm statistics: the batch's, then averaged
            continue
        np.testing.assert_allclose(t.numpy(), 0.75 * b + 0.25 * o.numpy(), atol=1e-6)
        averaged += 1
    assert averaged >= 10
    assert not model.objective.target.trainable_weights  # the optimizer never touches it
    assert any(not np.allclose(t.numpy(), o.numpy()) for t, o in
               zip(target.trainable_weights or target.weights, online.trainable_weights))
    # The target is part of the Pretrainer's weights: saved, checkpointed, restored.
    paths = {v.path for v in model.weights}
    assert all(v.path in paths for v in target.weights)


def test_the_backbone_after_pretraining_is_the_online_one():
    backbone = net()
    objective = pl.objectives.BYOL(projection_dim=8)
    pre = pl.Pretrainer(backbone, objective)
    assert pre.backbone is backbone
    assert backbone in keras_compat.sublayers(objective.online)
    assert backbone not in keras_compat.sublayers(objective.target)


@pytest.mark.parametrize("build, fragment", [
    (lambda: pl.objectives.SimCLR(temperature=0.0), "temperature"),
    (lambda: pl.objectives.SimCLR(temperature=-1), "temperature"),
    (lambda: pl.objectives.SimCLR(projection_dim=0), "projection_dim"),
    (lambda: pl.objectives.BYOL(projection_dim=0), "projection_dim"),
    (lambda: pl.objectives.BYOL(target_decay=1.0), "target_decay"),
    (lambda: pl.objectives.BYOL(target_decay=-0.1), "target_decay"),
    (lambda: pl.objectives.SimCLR(crop_scale=(0.0, 1.0)), "crop_scale"),
    (lambda: pl.objectives.SimCLR(crop_scale=(0.5, 1.5)), "crop_scale"),
    (lambda: pl.objectives.SimSiam(crop_scale=(0.8, 0.2)), "crop_scale"),
    (lambda: pl.data.RandomResizedCrop(28, 28, scale=(0.0, 1.0)), "scale"),
    (lambda: pl.data.RandomResizedCrop(28, 28, ratio=(0.0, 1.0)), "ratio"),
    (lambda: pl.data.contrastive_augmentation((28, 28)), "image_shape"),
    (lambda: pl.data.flip_and_shift(shift=1.5), "shift"),
    (lambda: pl.objectives.SimCLR(augment=["flip"]), "augment"),
])
def test_bad_arguments_name_themselves(build, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        build()


def test_images_smaller_than_the_crop_are_refused_before_any_step():
    crop = pl.data.RandomResizedCrop(32, 32)
    with pytest.raises(ValueError, match="RandomResizedCrop.*at least"):
        pl.Pretrainer(net(), pl.objectives.SimCLR(augment=[crop]))


def test_a_text_backbone_is_refused():
    encoder = pl.backbones.TextEncoder(50, num_layers=1, hidden_dim=16)
    with pytest.raises(ValueError, match="SimCLR needs a backbone with one input tensor"):
        pl.Pretrainer(encoder, pl.objectives.SimCLR())


def test_pretrained_backbone_fine_tunes_and_probes():
    keras.utils.set_random_seed(0)
    backbone = net()
    pre = pl.Pretrainer(backbone, pl.objectives.SimCLR(projection_dim=8), seed=0)
    pre.compile(learning_rate=1e-2)
    history = pre.fit(pl.data.image_dataset(images(64), batch_size=32, seed=0), epochs=3,
                      verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    part = pl.datasets.fashion_mnist().train.sample(60, seed=1)
    ft = pl.FineTuner(backbone, pl.heads.Classifier(10))
    ft.compile(learning_rate=1e-3)
    ft.fit(part.images, part.labels, epochs=1, verbose=0)
    report = pl.Evaluator(metrics=["accuracy"]).knn(backbone, (part.images, part.labels),
                                                    (part.images, part.labels), k=1)
    assert report.metrics["accuracy"] == 1.0  # each image's nearest is itself
