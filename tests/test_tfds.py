"""pl.data.from_tfds, offline: the bundled sets prepared as TFDS builders, and a
dataset the test writes in TFDS format itself."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import pretrainlib as pl


def prepare_tiny_reviews(data_dir):
    """A two-class text dataset written as a TFDS dataset from data in this file."""
    features = tfds.features.FeaturesDict({
        "review": tfds.features.Text(),
        "sentiment": tfds.features.ClassLabel(names=["neg", "pos"]),
    })
    rows = tf.data.Dataset.from_tensor_slices({
        "review": [("great fun" if i % 2 else "dull and slow") + f" {i}" for i in range(24)],
        "sentiment": [i % 2 for i in range(24)]})
    tfds.dataset_builders.store_as_tfds_dataset(
        name="tiny_reviews", version="1.0.0", features=features,
        split_datasets={"train": rows}, data_dir=str(data_dir))


def test_a_locally_prepared_dataset_reads_offline_and_trains(tmp_path, tokenizer):
    prepare_tiny_reviews(tmp_path)
    data = pl.data.from_tfds("tiny_reviews", data_dir=tmp_path, label="sentiment")
    assert len(data) == 24 and data.class_names == ("neg", "pos")
    assert sorted(data.labels.tolist()) == [0] * 12 + [1] * 12
    assert all(("great" in t) == bool(y) for t, y in zip(data.texts, data.labels))
    batch = next(iter(pl.data.text_dataset(data.texts, tokenizer, labels=data.labels,
                                           batch_size=8, sequence_length=16)))
    assert batch[0]["token_ids"].shape == (8, 16)
    head = pl.data.from_tfds("tiny_reviews", split="train[:5]", data_dir=tmp_path,
                             label="sentiment", max_examples=3)
    assert len(head) == 3


@pytest.mark.slow
def test_bundled_sets_as_tfds_builders_match_the_package_copies(tmp_path):
    wordnet = pl.data.from_tfds("wordnet_supersenses", split="test", data_dir=tmp_path,
                                download=True)  # prepared from the package: no network
    bundled = pl.datasets.wordnet_supersenses().test
    assert len(wordnet) == len(bundled) and wordnet.class_names == bundled.class_names
    assert sorted(zip(wordnet.texts, wordnet.labels.tolist())) == \
        sorted(zip(bundled.texts, bundled.labels.tolist()))
    images = pl.data.from_tfds("fashion_mnist_bundled", split="validation", data_dir=tmp_path,
                               download=True)
    copy = pl.datasets.fashion_mnist().validation
    assert images.images.shape == copy.images.shape + (1,)
    assert np.bincount(images.labels).tolist() == np.bincount(copy.labels).tolist()


def test_unprepared_unknown_or_unlabeled_datasets_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        pl.data.from_tfds("fashion_mnist_bundled", data_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="name"):
        pl.data.from_tfds("no_such_dataset_anywhere", data_dir=tmp_path)
    prepare_tiny_reviews(tmp_path)
    with pytest.raises(ValueError, match="label.*sentiment"):
        pl.data.from_tfds("tiny_reviews", data_dir=tmp_path)  # its labels are "sentiment"
    with pytest.raises(ValueError, match="split.*no example.*max_examples=0"):
        pl.data.from_tfds("tiny_reviews", data_dir=tmp_path, label="sentiment", max_examples=0)
    with pytest.raises(ValueError, match="feature"):
        pl.data.from_tfds("tiny_reviews", data_dir=tmp_path, label="sentiment", feature="nope")
