"""MAE on a VisionEncoder: the encoder sees only the visible patches, the loss counts
only the hidden ones, and the patches line up with the encoder's sequence."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl
from pretrainlib import randomness


def vit():
    keras.utils.set_random_seed(0)
    return pl.backbones.VisionEncoder(patch_size=7, num_layers=1, hidden_dim=16, num_heads=2)


def objective(**kwargs):
    return pl.objectives.MaskedAutoencoder(decoder_dim=16, decoder_heads=2, **kwargs)


def images(n=8):
    return pl.datasets.fashion_mnist().train.sample(n, seed=0).images[..., None] / 255.0


def transformed(obj, batch, seed=0):
    with randomness.batch_seed(tf.constant([seed, 0], "int64")):
        return obj.transform(tf.constant(batch, "float32"))


def test_each_image_hides_exactly_its_share_of_patches_anew_per_seed():
    obj = objective(mask_ratio=0.75)
    obj.validate_backbone(vit())
    (inputs, targets, hidden), again = transformed(obj, images()), transformed(obj, images(), 1)
    assert inputs["visible"].shape == (8, 4) and hidden.shape == (8, 16)
    np.testing.assert_array_equal(hidden.numpy().sum(1), 12)
    visible = np.zeros((8, 16))
    np.put_along_axis(visible, inputs["visible"].numpy(), 1, axis=1)
    np.testing.assert_array_equal(visible, 1 - hidden.numpy())  # the visible are not hidden
    assert not np.array_equal(inputs["visible"].numpy(), again[0]["visible"].numpy())
    assert targets.shape == (8, 16, 49)


def test_patches_line_up_with_the_encoders_sequence():
    backbone = vit()
    obj = objective(normalize_targets=False)
    obj.validate_backbone(backbone)
    batch = images(2).astype("float32")
    patches = obj.patchify(tf.constant(batch)).numpy()  # [2, 16, 49]
    kernel, bias = backbone.patch_embedding.kernel.numpy(), backbone.patch_embedding.bias.numpy()
    by_hand = patches @ kernel.reshape(49, 16) + bias
    sequence = backbone.to_sequence(backbone.patch_embedding(batch)).numpy()
    np.testing.assert_allclose(by_hand, sequence, atol=1e-5)


def test_the_encoder_sees_only_the_visible_patches():
    """Changing the pixels of hidden patches changes nothing the model outputs."""
    backbone = vit()
    obj = objective()
    model = pl.Pretrainer(backbone, obj, seed=0)
    inputs, _, hidden = transformed(obj, images())
    out = model.predict_on_batch(inputs)
    grid = hidden.numpy().reshape(8, 4, 4)
    pixel_hidden = np.repeat(np.repeat(grid, 7, axis=1), 7, axis=2)[..., None]
    noisy = np.where(pixel_hidden > 0, np.random.default_rng(0).random(pixel_hidden.shape),
                     inputs["images"].numpy()).astype("float32")
    changed = model.predict_on_batch({**inputs, "images": noisy})
    np.testing.assert_allclose(changed, out, atol=1e-6)
    # ... while a visible patch's pixels do matter.
    visible_changed = np.where(pixel_hidden > 0, inputs["images"].numpy(), 0.5)
    assert np.abs(model.predict_on_batch({**inputs, "images": visible_changed}) - out).max() > 1e-3


def test_the_loss_counts_only_hidden_patches_and_normalized_targets():
    obj = objective(normalize_targets=True)
    obj.validate_backbone(vit())
    _, targets, hidden = transformed(obj, images())
    np.testing.assert_allclose(targets.numpy().mean(-1), 0, atol=1e-5)
    predictions = np.zeros(targets.shape, "float32")
    predictions[hidden.numpy() == 0] = 100.0  # wrong on visible patches only: not counted
    loss = obj.loss()(targets, predictions, sample_weight=hidden)
    expected = (targets.numpy() ** 2).mean(-1)[hidden.numpy() > 0].mean()
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_pretraining_lowers_the_loss_and_keeps_the_backbone():
    backbone = vit()
    model = pl.Pretrainer(backbone, objective(), seed=0)
    model.compile(learning_rate=3e-3)
    data = pl.data.image_dataset(pl.datasets.fashion_mnist().unlabeled[:128], batch_size=32,
                                 seed=0)
    history = model.fit(data, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.backbone is backbone
    out = backbone(images(2).astype("float32"))
    assert tuple(out["pooled_output"].shape) == (2, 16)


@pytest.mark.parametrize("build, fragment", [
    (lambda: objective(mask_ratio=1.0), "mask_ratio"),
    (lambda: objective(mask_ratio=0.0), "mask_ratio"),
    (lambda: pl.objectives.MaskedAutoencoder(decoder_dim=0), "decoder_dim"),
    (lambda: pl.objectives.MaskedAutoencoder(decoder_dim=30, decoder_heads=4), "decoder_heads"),
    (lambda: pl.objectives.MaskedAutoencoder(decoder_layers=0), "decoder_layers"),
    (lambda: pl.Pretrainer(pl.backbones.ConvNet(widths=(8,)), objective()), "VisionEncoder"),
])
def test_bad_arguments_name_themselves(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()
