"""Labeled texts, text classification tasks, and the bundled text files they are read from."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import importlib.resources

import numpy as np

from pretrainlib.datasets.sampling import sample_indices


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
class TextClassificationTask:
    """A text classification task: labeled splits and unlabeled text to pretrain on.

    Attributes:
        train, validation, test: `LabeledTexts` splits.
        unlabeled: texts for pretraining, none of them a validation or test text.
        class_names: the classes, in label order.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.datasets import LabeledTexts, TextClassificationTask
        >>> split = LabeledTexts(["a dog", "an oak"], np.array([0, 1]), ("animal", "plant"))
        >>> task = TextClassificationTask(split, split, split, ["a cat"], ("animal", "plant"))
        >>> len(task.train), task.class_names
        (2, ('animal', 'plant'))
    """

    train: LabeledTexts
    validation: LabeledTexts
    test: LabeledTexts
    unlabeled: list[str]
    class_names: tuple[str, ...]


def bundled_rows(name: str):
    """The rows of a gzipped TSV file shipped in `pretrainlib/datasets/data/`, as dicts
    by column name."""
    path = importlib.resources.files("pretrainlib.datasets") / "data" / name
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def split_rows(rows, class_names, label_of, text_of, pretraining_text_of) -> dict:
    """`{"train", "validation", "test", "unlabeled"}` of a bundled file's rows: a row
    with a `split` is a labeled example of that split (`text_of(row)`, class
    `label_of(row)`), and every row outside validation and test is pretraining text
    (`pretraining_text_of(row)`)."""
    splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    unlabeled = []
    for row in rows:
        split = row["split"]
        if split:
            texts, labels = splits[split]
            texts.append(text_of(row))
            labels.append(label_of(row))
        if split not in ("validation", "test"):
            unlabeled.append(pretraining_text_of(row))
    parts = {name: LabeledTexts(texts, np.asarray(labels, "int32"), tuple(class_names))
             for name, (texts, labels) in splits.items()}
    return {**parts, "unlabeled": unlabeled}
