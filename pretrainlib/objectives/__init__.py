"""Pretraining objectives: raw batch -> (inputs, targets, weights), backbone -> head."""

from pretrainlib.objectives.autoencoder import Autoencoder
from pretrainlib.objectives.byol import BYOL, SimSiam
from pretrainlib.objectives.causal_lm import CausalLM
from pretrainlib.objectives.distillation import Distillation
from pretrainlib.objectives.image_classification import ImageClassification
from pretrainlib.objectives.masked_autoencoder import MaskedAutoencoder
from pretrainlib.objectives.masked_lm import MaskedLM
from pretrainlib.objectives.objective import Objective
from pretrainlib.objectives.simclr import SimCLR
# The objectives' random draws (`pl.objectives.randomness.uniform`): the module
# is `pl.randomness`, shared with the data pipelines.
from pretrainlib import randomness  # noqa: F401

__all__ = ["Autoencoder", "BYOL", "CausalLM", "Distillation", "ImageClassification",
           "MaskedAutoencoder", "MaskedLM", "Objective", "SimCLR", "SimSiam"]
