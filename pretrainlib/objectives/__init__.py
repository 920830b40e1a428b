"""Pretraining objectives: raw batch -> (inputs, targets, weights), backbone -> head."""

from pretrainlib.objectives.masked_lm import MaskedLM
from pretrainlib.objectives.objective import Objective

__all__ = ["MaskedLM", "Objective"]
