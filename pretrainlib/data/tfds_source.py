"""TensorFlow Datasets as the library's inputs (texts or images with labels)."""

from __future__ import annotations

import importlib
import os

import numpy as np

from pretrainlib.datasets.fashion_mnist import LabeledImages
from pretrainlib.datasets.texts import LabeledTexts


def from_tfds(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
              download: bool = False, feature: str | None = None, label: str = "label",
              max_examples: int | None = None) -> LabeledTexts | LabeledImages:
    """Reads a TFDS dataset's `split` as `LabeledTexts` or `LabeledImages`, ready for
    `pl.data.text_dataset` / `pl.data.image_dataset` (and their `.sample(n)`).

    Offline by default: the dataset must already be prepared in `data_dir` (TFDS's
    default `~/tensorflow_datasets` when None). `download=True` lets TFDS download
    and prepare it first, the only case that reaches the network; the bundled
    `wordnet_supersenses` and `fashion_mnist_bundled` builders prepare from the
    package's own copy and never do.

    Args:
        name: a TFDS name (`"imdb_reviews"`, `"fashion_mnist"`, `"mnist:3.0.1"`).
        split: a TFDS split, slices included (`"train[:10%]"`).
        feature: the input feature; default the first `Text`, else `Image`, feature.
        label: the `ClassLabel` feature (`-1` marks unlabeled examples).
        max_examples: read at most this many (the first ones in TFDS order).

    Examples:
        >>> import tempfile, pretrainlib as pl
        >>> part = pl.data.from_tfds("fashion_mnist_bundled", split="test[:12]",
        ...                          data_dir=tempfile.mkdtemp(), download=True)
        Downloading and preparing dataset ...
        Dataset fashion_mnist_bundled downloaded and prepared to ...
        >>> part.images.shape, part.class_names[0]  # TFDS lowercases class names
        ((12, 28, 28, 1), 't-shirt/top')
    """
    import tensorflow_datasets as tfds  # slow to import: only when used

    importlib.import_module("pretrainlib.datasets.tfds_builders")  # registers bundled sets

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(f"`name` {name!r} is not a TFDS dataset: {error}") from None
    if download:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    elif not builder.is_prepared():
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in {builder.data_dir_root!r}. Pass "
            "`download=True` to let TFDS fetch and prepare it (network), or point "
            "`data_dir` at a directory where it was prepared.")
    features = builder.info.features
    feature = feature or _input_feature(features, name)
    if feature not in features or not isinstance(
            features[feature], (tfds.features.Text, tfds.features.Image)):
        raise ValueError(
            f"`feature` {feature!r} is not a Text or Image feature of {name!r}; its "
            f"features: {sorted(features)}.")
    if label not in features or not isinstance(features[label], tfds.features.ClassLabel):
        raise ValueError(
            f"`label` {label!r} is not a ClassLabel feature of {name!r}; its features: "
            f"{sorted(features)}.")
    dataset = builder.as_dataset(split=split)
    if max_examples is not None:
        dataset = dataset.take(int(max_examples))
    # Read in large batches (one tf.data step per 1,024 examples, not per example).
    parts = [(batch[feature], batch[label]) for batch in tfds.as_numpy(
        dataset.map(lambda x: {feature: x[feature], label: x[label]}).batch(1024))]
    if not parts:
        raise ValueError(f"`split` {split!r} of {name!r} gave no example "
                         f"(max_examples={max_examples}).")
    inputs = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts]).astype("int32")
    class_names = tuple(features[label].names)
    if isinstance(features[feature], tfds.features.Text):
        return LabeledTexts([t.decode("utf-8") for t in inputs], labels, class_names)
    return LabeledImages(inputs, labels, class_names)


def _input_feature(features, name: str) -> str:
    import tensorflow_datasets as tfds

    for kind in (tfds.features.Text, tfds.features.Image):
        for key, value in features.items():
            if isinstance(value, kind):
                return key
    raise ValueError(
        f"{name!r} has no Text or Image feature ({sorted(features)}); pass `feature=`.")
