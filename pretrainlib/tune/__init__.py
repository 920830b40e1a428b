"""Choosing training settings from data: the learning-rate range test and a small
grid search, each on copies of the model.

    found = pl.tune.find_learning_rate(ft, train_data)   # ft untouched
    found.plot("lr.png"); ft.compile(learning_rate=found.suggestion)
    result = pl.tune.search(ft, train_data, validation_data=val_data,
                            learning_rate=[1e-3, 3e-4], epochs=[10])
    print(result); best = result.best_model
    comparison = pl.tune.compare_policies(ft, train_data, validation_data=val_data,
                                          test_data=test_data, policies=[...])
"""

from pretrainlib.tune.lr_finder import LearningRateFinding, find_learning_rate, valley
from pretrainlib.tune.policies import (
    PolicyComparison,
    PolicyResult,
    compare_policies,
    default_learning_rates,
)
from pretrainlib.tune.search import SearchResult, Trial, search

__all__ = ["LearningRateFinding", "PolicyComparison", "PolicyResult", "SearchResult", "Trial",
           "compare_policies", "default_learning_rates", "find_learning_rate", "search",
           "valley"]
