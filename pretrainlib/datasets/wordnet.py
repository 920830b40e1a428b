"""Princeton WordNet 3.0 glosses, shipped with the package (WordNet licence)."""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import importlib.resources

import numpy as np

from pretrainlib.datasets.sampling import sample_indices

SUPERSENSES = ("animal", "artifact", "food", "location", "person", "plant")
_DATA_FILE = "wordnet_glosses.tsv.gz"


@dataclasses.dataclass(frozen=True)
class LabeledTexts:
    """Texts with integer labels (`labels[i]` indexes `class_names`).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.datasets import LabeledTexts
        >>> data = LabeledTexts(["a dog", "a cat", "an oak"], np.array([0, 0, 1]),
        ...                     ("animal", "plant"))
        >>> sorted(data.sample(2, seed=0).labels.tolist())
        [0, 1]
    """

    texts: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, seed: int = 0, stratified: bool = True) -> "LabeledTexts":
        """Draws `n` examples without replacement (stratified by class by default).

        A stratified draw keeps every class present, which a few-label benchmark needs.
        """
        index = sample_indices(self.labels, len(self.class_names), n, seed, stratified)
        return LabeledTexts([self.texts[i] for i in index], self.labels[index],
                            self.class_names)


@dataclasses.dataclass(frozen=True)
class WordNetSupersenses:
    """The WordNet supersense task: a noun's definition -> its supersense.

    Attributes:
        train, validation, test: `LabeledTexts` splits (80/10/10, stratified, seed 1234
            fixed when the data file was built by `scripts/build_wordnet.py`).
        unlabeled: glosses (definition and usage examples) of every WordNet synset of
            every part of speech, except the validation and test synsets: text for
            pretraining that never shows the model an evaluation gloss.
        class_names: the six supersenses.

    Examples:
        >>> import pretrainlib as pl
        >>> few = pl.datasets.wordnet_supersenses().train.sample(60, seed=0)
        >>> len(few), len(set(few.labels.tolist()))
        (60, 6)
    """

    train: LabeledTexts
    validation: LabeledTexts
    test: LabeledTexts
    unlabeled: list[str]
    class_names: tuple[str, ...] = SUPERSENSES


def wordnet_supersenses() -> WordNetSupersenses:
    """Loads the bundled WordNet supersense task; offline, no download.

    Labeled: about 44,000 noun definitions in six classes (animal, artifact, food,
    location, person, plant). Unlabeled: about 109,000 glosses of all parts of speech.
    Data: Princeton WordNet 3.0 from Debian's `wordnet-base` package; its licence is
    shipped as `pretrainlib/datasets/data/LICENSE.wordnet`.

    Examples:
        >>> import pretrainlib as pl
        >>> wn = pl.datasets.wordnet_supersenses()
        >>> wn.class_names
        ('animal', 'artifact', 'food', 'location', 'person', 'plant')
        >>> len(wn.train) > 30000 and len(wn.unlabeled) > 100000
        True
    """
    return _load()


@functools.lru_cache(maxsize=1)
def _load() -> WordNetSupersenses:
    splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    unlabeled = []
    label_of = {f"noun.{name}": i for i, name in enumerate(SUPERSENSES)}
    path = importlib.resources.files("pretrainlib.datasets") / "data" / _DATA_FILE
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            split = row["split"]
            if split:
                texts, labels = splits[split]
                texts.append(row["definition"])
                labels.append(label_of[row["lexname"]])
            if split not in ("validation", "test"):
                examples = row["examples"].replace(" | ", " ")
                unlabeled.append(f"{row['definition']} {examples}".strip())
    parts = {
        name: LabeledTexts(texts, np.asarray(labels, "int32"), SUPERSENSES)
        for name, (texts, labels) in splits.items()
    }
    return WordNetSupersenses(unlabeled=unlabeled, **parts)
