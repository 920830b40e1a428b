"""The bundled text tasks: splits that never leak into the pretraining text, every class
in every split, and definitions held out of it."""

import numpy as np
import pytest

import pretrainlib as pl


@pytest.mark.parametrize("load, classes", [(pl.datasets.wordnet_supersenses, 6),
                                           (pl.datasets.fortune_topics, 7)])
def test_evaluation_texts_stay_out_of_the_pretraining_text(load, classes):
    task = load()
    assert isinstance(task, pl.datasets.TextClassificationTask)
    assert len(task.class_names) == classes
    held_out = set(task.validation.texts) | set(task.test.texts)
    unlabeled = set(task.unlabeled)
    # A text repeated verbatim elsewhere in the corpus may appear in both; no more.
    leaked = [t for t in held_out if t in unlabeled and t not in set(task.train.texts)]
    assert len(leaked) <= 0.01 * len(held_out)
    for split in (task.train, task.validation, task.test):
        counts = np.bincount(split.labels, minlength=classes)
        assert (counts > 0).all() and len(split.texts) == len(split.labels)
    # Stratified 80/10/10 per class.
    ratio = np.bincount(task.test.labels) / np.bincount(task.train.labels)
    np.testing.assert_allclose(ratio, 0.125, atol=0.01)


def test_fortunes_are_whole_single_line_texts():
    task = pl.datasets.fortune_topics()
    texts = task.train.texts + task.unlabeled
    assert all(text and "\n" not in text and "\t" not in text for text in texts)
    assert len(task.unlabeled) > 10000 and len(task.test) == 550


def test_definitions_hold_out_the_supersense_evaluation_nouns():
    definitions, supersenses = pl.datasets.wordnet_definitions(), pl.datasets.wordnet_supersenses()
    assert definitions.test.definitions == supersenses.test.texts
    assert definitions.validation.definitions == supersenses.validation.texts
    assert definitions.unlabeled is supersenses.unlabeled
    # Identical glosses of other synsets aside, no test definition is pretraining text.
    shared = set(definitions.test.definitions) & set(definitions.unlabeled)
    assert len(shared) <= 0.02 * len(definitions.test)  # "a borough of New York City", ...
    pairs = definitions.train.sample(5, seed=1)
    assert pairs.prompts()[0] == pairs.terms[0] + " :"
    with pytest.raises(ValueError, match="`n` must be between 1"):
        definitions.test.sample(0)
