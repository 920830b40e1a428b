"""Fortune cookies from Debian's fortune-mod data files, shipped with the package (BSD
licence)."""

from __future__ import annotations

import dataclasses
import functools

from pretrainlib.datasets.texts import TextClassificationTask, bundled_rows, split_rows

TOPICS = ("computers", "definitions", "men-women", "politics", "science", "songs-poems",
          "work")
_DATA_FILE = "fortunes.tsv.gz"


@dataclasses.dataclass(frozen=True)
class FortuneTopics(TextClassificationTask):
    """The fortune topic task: a fortune cookie -> the fortune file it comes from.

    Attributes:
        train, validation, test: `LabeledTexts` splits (80/10/10, stratified, seed 1234
            fixed when the data file was built by `scripts/build_fortunes.py`).
        unlabeled: every fortune of the other files (art, cookie, people, wisdom, ...)
            and the labeled training fortunes: text for pretraining that never shows
            the model a validation or test fortune.
        class_names: the seven topics.

    Examples:
        >>> import pretrainlib as pl
        >>> few = pl.datasets.fortune_topics().train.sample(70, seed=0)
        >>> len(few), len(set(few.labels.tolist()))
        (70, 7)
    """

    class_names: tuple[str, ...] = TOPICS


def fortune_topics() -> FortuneTopics:
    """Loads the bundled fortune topic task; offline, no download.

    Labeled: about 5,500 fortunes (quips, quotations, poems, jokes) from seven topic
    files (computers, definitions, men-women, politics, science, songs-poems, work).
    Unlabeled: about 14,000 fortunes. Short, informal, often ironic text: a second
    real corpus beside WordNet's definitions. Data: the `fortunes` and `fortunes-min`
    Debian packages (fortune-mod); their copyright file is shipped as
    `pretrainlib/datasets/data/LICENSE.fortunes`.

    Examples:
        >>> import pretrainlib as pl
        >>> task = pl.datasets.fortune_topics()
        >>> task.class_names[:3], len(task.test)
        (('computers', 'definitions', 'men-women'), 550)
    """
    return _load()


@functools.lru_cache(maxsize=1)
def _load() -> FortuneTopics:
    label_of = {topic: i for i, topic in enumerate(TOPICS)}
    return FortuneTopics(**split_rows(bundled_rows(_DATA_FILE), TOPICS,
                                      lambda row: label_of[row["topic"]],
                                      lambda row: row["text"], lambda row: row["text"]))
