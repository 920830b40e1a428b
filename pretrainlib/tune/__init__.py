"""Choosing training settings from data: the learning-rate range test.

    found = pl.tune.find_learning_rate(ft, train_data)   # on a copy; ft untouched
    found.plot("lr.png"); ft.compile(learning_rate=found.suggestion)
"""

from pretrainlib.tune.lr_finder import LearningRateFinding, find_learning_rate, valley

__all__ = ["LearningRateFinding", "find_learning_rate", "valley"]
