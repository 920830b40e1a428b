"""The bundled datasets as TensorFlow Datasets builders (prepared offline).

Importing this module registers `wordnet_supersenses` and `fashion_mnist_bundled`
with TFDS; `pl.data.from_tfds` imports it. Preparing either reads the copy shipped
in this package, so `download=True` downloads nothing.

Examples:
    >>> import tensorflow_datasets as tfds
    >>> import pretrainlib.datasets.tfds_builders
    >>> tfds.builder("fashion_mnist_bundled").info.features["label"].names[:2]
    ['t-shirt/top', 'trouser']
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from pretrainlib.datasets.fashion_mnist import fashion_mnist
from pretrainlib.datasets.wordnet import SUPERSENSES, wordnet_supersenses


class WordnetSupersenses(tfds.core.GeneratorBasedBuilder):
    """WordNet 3.0 noun definitions labeled with their supersense (six classes), plus
    an `unlabeled` split of glosses for pretraining (label -1).

    Examples:
        >>> from pretrainlib.datasets.tfds_builders import WordnetSupersenses
        >>> WordnetSupersenses.name, WordnetSupersenses().info.supervised_keys
        ('wordnet_supersenses', ('text', 'label'))
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From pretrainlib's bundled WordNet 3.0 copy."}

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(SUPERSENSES)),
            }),
            supervised_keys=("text", "label"),
            homepage="https://wordnet.princeton.edu/",
            license="WordNet 3.0 license (pretrainlib/datasets/data/LICENSE.wordnet)",
        )

    def _split_generators(self, dl_manager):
        data = wordnet_supersenses()
        splits = {name: getattr(data, name) for name in ("train", "validation", "test")}
        generators = {name: self._generate_examples(part.texts, part.labels)
                      for name, part in splits.items()}
        generators["unlabeled"] = self._generate_examples(data.unlabeled,
                                                          [-1] * len(data.unlabeled))
        return generators

    def _generate_examples(self, texts, labels):
        for i, (text, label) in enumerate(zip(texts, labels)):
            yield i, {"text": text, "label": int(label)}


class FashionMnistBundled(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (MIT), 28 x 28 grayscale, ten classes, from pretrainlib's copy.

    Examples:
        >>> from pretrainlib.datasets.tfds_builders import FashionMnistBundled
        >>> FashionMnistBundled().info.features["image"].shape
        (28, 28, 1)
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From pretrainlib's bundled Fashion-MNIST copy."}

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(names=list(fashion_mnist().class_names)),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            license="MIT",
        )

    def _split_generators(self, dl_manager):
        data = fashion_mnist()
        return {name: self._generate_examples(getattr(data, name))
                for name in ("train", "validation", "test")}

    def _generate_examples(self, part):
        for i, (image, label) in enumerate(zip(part.images, part.labels)):
            yield i, {"image": image[..., None], "label": int(label)}
