"""Princeton WordNet 3.0 glosses, shipped with the package (WordNet licence)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from pretrainlib.datasets.texts import (
    TextClassificationTask,
    bundled_rows,
    split_rows,
)

SUPERSENSES = ("animal", "artifact", "food", "location", "person", "plant")
_DATA_FILE = "wordnet_glosses.tsv.gz"


@dataclasses.dataclass(frozen=True)
class WordNetSupersenses(TextClassificationTask):
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


def _rows():
    """The bundled file's rows (dicts by column: pos, lexname, split, lemmas,
    definition, examples)."""
    return bundled_rows(_DATA_FILE)


def _pretraining_text(row) -> str:
    """A gloss as pretraining text: the definition, then its usage examples."""
    return f"{row['definition']} {row['examples'].replace(' | ', ' ')}".strip()


@functools.lru_cache(maxsize=1)
def _load() -> WordNetSupersenses:
    label_of = {f"noun.{name}": i for i, name in enumerate(SUPERSENSES)}
    return WordNetSupersenses(**split_rows(
        _rows(), SUPERSENSES, lambda row: label_of[row["lexname"]],
        lambda row: row["definition"], _pretraining_text))


@dataclasses.dataclass(frozen=True)
class Definitions:
    """Terms with their definitions (`definitions[i]` defines `terms[i]`).

    Examples:
        >>> from pretrainlib.datasets import Definitions
        >>> data = Definitions(["dog", "oak", "cup"], ["a pet", "a tree", "a small bowl"])
        >>> len(data.sample(2, seed=0)), data.prompts()[:1]
        (2, ['dog :'])
    """

    terms: list[str]
    definitions: list[str]

    def __len__(self) -> int:
        return len(self.terms)

    def sample(self, n: int, seed: int = 0) -> "Definitions":
        """Draws `n` pairs without replacement, in a random order fixed by `seed`."""
        if not 0 < n <= len(self):
            raise ValueError(f"`n` must be between 1 and {len(self)} (the pairs there are). "
                             f"Received: n={n!r}")
        index = np.random.default_rng(seed).choice(len(self), n, replace=False)
        return Definitions([self.terms[i] for i in index],
                           [self.definitions[i] for i in index])

    def prompts(self, separator: str = " :") -> list[str]:
        """Each term followed by `separator`: the prompt a model writes the definition
        after."""
        return [term + separator for term in self.terms]


@dataclasses.dataclass(frozen=True)
class WordNetDefinitions:
    """The WordNet definition-writing task: a noun -> its definition.

    Attributes:
        train: every WordNet noun synset outside the validation and test ones (about
            73,000), its first lemma as the term.
        validation, test: the noun synsets held out of `wordnet_supersenses()`
            (about 4,400 each): their glosses are not in `unlabeled`.
        unlabeled: the same pretraining glosses as `wordnet_supersenses().unlabeled`
            (definitions and usage examples of all parts of speech, held-out
            synsets excluded).

    Examples:
        >>> import pretrainlib as pl
        >>> wn = pl.datasets.wordnet_definitions()
        >>> wn.test.terms[0], len(wn.train) > 70000  # "peeper" has other senses in train
        ('peeper', True)
    """

    train: Definitions
    validation: Definitions
    test: Definitions
    unlabeled: list[str]


def wordnet_definitions() -> WordNetDefinitions:
    """Loads the bundled WordNet definitions (noun -> gloss), offline, for fine-tuning
    a causal model to write definitions (`pl.data.prompt_dataset`) and scoring what it
    writes (`Evaluator.evaluate_texts`).

    A term is the synset's first lemma (`"abstraction"`, `"physical entity"`); a term
    may have several senses in `train` (one pair each). Held-out synsets are the
    supersense task's validation and test nouns, so the same pretraining text serves
    both tasks without showing an evaluation gloss. Same data and licence as
    `wordnet_supersenses()`.

    Examples:
        >>> import pretrainlib as pl
        >>> wn = pl.datasets.wordnet_definitions()
        >>> wn.train.terms[:2], wn.train.definitions[1]
        (['entity', 'physical entity'], 'an entity that has physical existence')
    """
    return _load_definitions()


@functools.lru_cache(maxsize=1)
def _load_definitions() -> WordNetDefinitions:
    splits = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for row in _rows():
        if row["pos"] != "n":
            continue
        terms, definitions = splits[row["split"] or "train"]
        terms.append(row["lemmas"].split("|")[0])
        definitions.append(row["definition"])
    return WordNetDefinitions(unlabeled=_load().unlabeled,
                              **{name: Definitions(*pair) for name, pair in splits.items()})
