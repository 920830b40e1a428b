"""Images reach each backbone at the size and scale it expects, or fail saying so."""

import keras
import numpy as np
import pytest

import pretrainlib as pl
from pretrainlib.data.image_preprocessor import scale_for


def test_each_scale_maps_pixels_as_its_family_expects():
    pixels = np.array([[[[0], [255]]]], "uint8")  # one 1x2 grayscale image
    expected = {"unit": (0.0, 1.0), "raw": (0.0, 255.0), "symmetric": (-1.0, 1.0),
                "torch": ((0 - 0.485) / 0.229, (1 - 0.485) / 0.229)}
    for scale, (low, high) in expected.items():
        out = pl.data.ImagePreprocessor(scale=scale)(pixels).numpy()
        assert out[0, 0, 0, 0] == pytest.approx(low, abs=1e-5), scale
        assert out[0, 0, 1, 0] == pytest.approx(high, abs=1e-5), scale
    caffe = pl.data.ImagePreprocessor(scale="caffe")(
        np.full((1, 1, 1, 3), [10, 20, 30], "uint8")).numpy()[0, 0, 0]
    np.testing.assert_allclose(caffe, [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)


def test_keras_applications_backbones_get_their_own_preprocessing():
    mobile = keras.applications.MobileNetV2(weights=None, include_top=False,
                                            input_shape=(32, 32, 3))
    efficient = keras.applications.EfficientNetB0(weights=None, include_top=False,
                                                  input_shape=(32, 32, 3))
    assert (scale_for(mobile), scale_for(efficient)) == ("symmetric", "raw")
    pre = pl.data.ImagePreprocessor.for_backbone(efficient)
    assert (pre.image_size, pre.scale, pre.channels) == ((32, 32), "raw", 3)
    images = pl.datasets.fashion_mnist().train.sample(8, seed=0).images
    batch = next(iter(pl.data.image_dataset(images, batch_size=8, preprocessor=pre)))
    assert tuple(batch.shape) == (8, 32, 32, 3) and float(batch.numpy().max()) > 1.0


def test_zero_one_images_into_a_backbone_that_rescales_itself_are_refused():
    efficient = keras.applications.EfficientNetB0(weights=None, include_top=False,
                                                  input_shape=(32, 32, 3))
    ft = pl.FineTuner(efficient, pl.heads.Classifier(2))
    ft.compile()
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    with pytest.raises(ValueError, match="in \\[0, 1\\].*scale='raw'.*for_backbone"):
        ft.fit(pl.data.image_dataset(images, [0, 1, 0, 1]), verbose=0)
    with pytest.raises(ValueError, match="scale='unit'.*expects scale='raw'"):
        pl.FineTuner(efficient, pl.heads.Classifier(2),
                     preprocessor=pl.data.ImagePreprocessor(scale="unit"))


def test_a_fine_tuner_with_an_image_preprocessor_takes_uint8_images(tmp_path):
    fm = pl.datasets.fashion_mnist().train.sample(32, seed=0)
    backbone = pl.backbones.ConvNet(input_shape=(28, 28, 1), widths=(4,))
    ft = pl.FineTuner(backbone, pl.heads.Classifier(10),
                      preprocessor=pl.data.ImagePreprocessor.for_backbone(backbone))
    ft.compile(learning_rate=1e-2)
    ft.fit(fm.images, fm.labels, batch_size=8, epochs=1, verbose=0)
    predicted = ft.predict(fm.images[:4], verbose=0)
    np.testing.assert_allclose(predicted, ft.predict(fm.images[:4, :, :, None] / 255.0,
                                                     verbose=0), atol=1e-5)
    ft.save(tmp_path / "images.keras")
    restored = keras.saving.load_model(tmp_path / "images.keras")
    np.testing.assert_allclose(restored.predict(fm.images[:4], verbose=0), predicted,
                               atol=1e-5)
    with pytest.raises(ValueError, match="image_size=\\(32, 32\\).*\\(28, 28\\)"):
        pl.FineTuner(backbone, pl.heads.Classifier(10),
                     preprocessor=pl.data.ImagePreprocessor(image_size=(32, 32)))
