"""Images from folders: the pixels of the in-memory path, keyed epochs, named errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import pretrainlib as pl


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(image).numpy())
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """40 Fashion-MNIST images as PNGs in class folders, with the arrays."""
    sample = pl.datasets.fashion_mnist().train.sample(40, seed=0)
    root = tmp_path_factory.mktemp("images")
    names = [n.replace("/", "-") for n in sample.class_names]  # t-shirt/top
    for i, (image, label) in enumerate(zip(sample.images, sample.labels)):
        write_png(root / names[label] / f"{i:03d}.png", image[..., None])
    listed = pl.data.image_folder(root, labels=None).file_paths  # class folders, sorted
    order = [int(p[-7:-4]) for p in listed]
    return root, sample.images[order], sample.labels[order], names


def test_class_folders_give_the_pixels_and_labels_of_image_dataset(folder):
    root, images, labels, names = folder
    ds = pl.data.image_folder(root, batch_size=8, shuffle=False)
    expected = pl.data.image_dataset(images, labels, batch_size=8, shuffle=False)
    got = [(x.numpy(), y.numpy()) for x, y in ds]
    want = [(x.numpy(), y.numpy()) for x, y in expected]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]),
                                  np.concatenate([x for x, _ in want]))
    present = sorted({names[y] for y in labels})
    assert ds.class_names == present
    ids = np.array([present.index(names[y]) for y in labels])
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), ids)


def test_unlabeled_resized_and_for_a_backbone(folder):
    root = folder[0]
    ds = pl.data.image_folder(root, labels=None, image_size=(32, 32), channels=3,
                              batch_size=8, shuffle=False)
    x = next(iter(ds))
    assert x.shape == (8, 32, 32, 3) and float(tf.reduce_max(x)) <= 1.0
    mobilenet = keras.applications.MobileNetV2(weights=None, include_top=False,
                                               input_shape=(32, 32, 3))
    pre = pl.data.ImagePreprocessor.for_backbone(mobilenet)
    scaled = next(iter(pl.data.image_folder(root, labels=None, channels=3, batch_size=8,
                                            shuffle=False, preprocessor=pre)))
    assert scaled.shape == (8, 32, 32, 3) and float(tf.reduce_min(scaled)) >= -1.0
    assert float(tf.reduce_min(scaled)) < 0  # [-1, 1], MobileNetV2's scaling


def test_epochs_are_keyed_resumable_and_augmentation_replays(folder):
    root = folder[0]
    ds = pl.data.image_folder(root, batch_size=8, seed=1,
                              augment=[keras.layers.RandomTranslation(0.2, 0.2)])
    source = pl.epochs.source_of(ds)
    epoch = [x.numpy() for x, _ in source.epoch(2)]
    resumed = [x.numpy() for x, _ in source.stream(2, 3).take(2)]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(epoch[3:]))
    assert not np.array_equal(np.concatenate(epoch),
                              np.concatenate([x.numpy() for x, _ in source.epoch(3)]))


def test_a_convnet_trains_on_a_folder(folder):
    root = folder[0]
    ds = pl.data.image_folder(root, batch_size=8, seed=0)
    keras.utils.set_random_seed(0)
    ft = pl.FineTuner(pl.backbones.ConvNet(input_shape=(28, 28, 1), widths=(8,)),
                      pl.heads.Classifier(len(ds.class_names)),
                      policy=pl.freezing.FullFineTune())
    ft.compile(learning_rate=3e-3)
    history = ft.fit(ds, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert ft.class_names == ds.class_names


def test_bad_folders_fail_naming_the_file(tmp_path, folder):
    images = folder[1]
    good = write_png(tmp_path / "a" / "good.png", images[0][..., None])
    (tmp_path / "a" / "cut.png").write_bytes(good.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"cut\.png: cannot be read as an image \(truncated"):
        pl.data.image_folder(tmp_path)
    (tmp_path / "a" / "cut.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cut\.png: not a PNG, JPEG"):
        pl.data.image_folder(tmp_path)
    (tmp_path / "a" / "cut.png").unlink()
    write_png(tmp_path / "a" / "big.png", np.zeros((30, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"differ in size: .*big.png is 30x28.*image_size"):
        pl.data.image_folder(tmp_path)
    (tmp_path / "a" / "big.png").unlink()
    write_png(tmp_path / "a" / "rgb.png", np.zeros((28, 28, 3), np.uint8))
    with pytest.raises(ValueError, match="mix channels.*channels=1 or channels=3"):
        pl.data.image_folder(tmp_path)
    assert next(iter(pl.data.image_folder(tmp_path, channels=3)))[0].shape[-1] == 3
    (tmp_path / "b").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder .*b' holds no image"):
        pl.data.image_folder(tmp_path, channels=1)
    with pytest.raises(FileNotFoundError, match="not sub-folders"):
        pl.data.image_folder(tmp_path, class_names=["a", "zebra"])
    with pytest.raises(FileNotFoundError, match="has no sub-folders"):
        pl.data.image_folder(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="must be a folder"):
        pl.data.image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="image_size"):
        pl.data.image_folder(tmp_path, image_size=(0, 28))


def test_class_names_need_inferred_labels(folder):
    with pytest.raises(ValueError, match="`class_names` picks class sub-folders"):
        pl.data.image_folder(folder[0], labels=None, class_names=["a"])
