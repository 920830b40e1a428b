"""A Fashion-MNIST subset shipped with the package (Zalando Research, MIT licence)."""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources

import numpy as np

from pretrainlib.datasets.sampling import sample_indices

CLASS_NAMES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
               "sneaker", "bag", "ankle boot")
_DATA_FILE = "fashion_mnist_subset.npz"


@dataclasses.dataclass(frozen=True)
class LabeledImages:
    """uint8 images `[n, height, width]` with integer labels indexing `class_names`.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.datasets import LabeledImages
        >>> data = LabeledImages(np.zeros((4, 2, 2), "uint8"), np.array([0, 0, 1, 2]),
        ...                      ("a", "b", "c"))
        >>> few = data.classes([1, 2])
        >>> few.labels.tolist(), few.class_names
        ([0, 1], ('b', 'c'))
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, n: int, seed: int = 0, stratified: bool = True) -> "LabeledImages":
        """Draws `n` examples without replacement (stratified by class by default)."""
        index = sample_indices(self.labels, len(self.class_names), n, seed, stratified)
        return LabeledImages(self.images[index], self.labels[index], self.class_names)

    def classes(self, keep) -> "LabeledImages":
        """The examples of the classes in `keep`, relabelled `0..len(keep)-1` in
        `keep`'s order (e.g. to pretrain on five classes and transfer to the other five)."""
        keep = list(keep)
        unknown = [c for c in keep if not 0 <= c < len(self.class_names)]
        if not keep or unknown or len(set(keep)) != len(keep):
            raise ValueError(
                f"`keep` must list distinct class ids in [0, {len(self.class_names)}). "
                f"Received: keep={keep}"
            )
        index = np.flatnonzero(np.isin(self.labels, keep))
        relabel = np.zeros(len(self.class_names), "int32")
        relabel[keep] = np.arange(len(keep))
        return LabeledImages(self.images[index], relabel[self.labels[index]],
                             tuple(self.class_names[c] for c in keep))


@dataclasses.dataclass(frozen=True)
class FashionMNIST:
    """Fashion-MNIST: 28x28 grayscale photos of clothing in ten classes.

    Attributes:
        train: 18,000 labeled images (1,800 per class); draw few-label sets from it
            with `train.sample(n, seed)`.
        validation: 2,000 images (200 per class) held out from `train`.
        test: 5,000 images (500 per class) from the official test set.
        unlabeled: the training images without labels, for pretraining; they never
            include a validation or test image.
        class_names: the ten class names.

    Examples:
        >>> import pretrainlib as pl
        >>> fm = pl.datasets.fashion_mnist()
        >>> few = fm.train.sample(100, seed=0)
        >>> few.images.shape, sorted(set(few.labels.tolist())) == list(range(10))
        ((100, 28, 28), True)
    """

    train: LabeledImages
    validation: LabeledImages
    test: LabeledImages
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def unlabeled(self) -> np.ndarray:
        return self.train.images


def fashion_mnist() -> FashionMNIST:
    """Loads the bundled Fashion-MNIST subset; offline, no download.

    25,000 of the 70,000 images (class-balanced; 11 MB), built from Debian's
    `dataset-fashion-mnist` package by `scripts/build_fashion_mnist.py`; the MIT
    licence is shipped as `pretrainlib/datasets/data/LICENSE.fashion_mnist`.
    Images are uint8 in [0, 255]; `pl.data.image_dataset` scales them to [0, 1].

    Examples:
        >>> import pretrainlib as pl
        >>> fm = pl.datasets.fashion_mnist()
        >>> len(fm.train), len(fm.validation), len(fm.test), fm.class_names[9]
        (18000, 2000, 5000, 'ankle boot')
    """
    return _load()


@functools.lru_cache(maxsize=1)
def _load() -> FashionMNIST:
    path = importlib.resources.files("pretrainlib.datasets") / "data" / _DATA_FILE
    with path.open("rb") as f, np.load(f) as data:
        arrays = {key: data[key] for key in data.files}
    splits = {
        name: LabeledImages(arrays[f"{key}_images"], arrays[f"{key}_labels"].astype("int32"),
                            CLASS_NAMES)
        for name, key in (("train", "train"), ("validation", "val"), ("test", "test"))
    }
    return FashionMNIST(**splits)
