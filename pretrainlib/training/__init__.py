"""The training core: optimizers, schedules and compile defaults."""

from pretrainlib.training import precision
from pretrainlib.training.checkpoint import Checkpoint, NonFiniteLossGuard
from pretrainlib.training.core import TrainingCore, make_optimizer
from pretrainlib.losses import GlobalWeightedMean, MaskedTokenCrossentropy
from pretrainlib.metrics import PSNR, MacroF1, squared_error
from pretrainlib.training.optimizers import SGD, Adam, AdamW
from pretrainlib.training.schedules import WarmupLinearDecay

__all__ = ["PSNR", "SGD", "Adam", "AdamW", "Checkpoint", "GlobalWeightedMean", "MacroF1",
           "MaskedTokenCrossentropy", "NonFiniteLossGuard", "TrainingCore",
           "WarmupLinearDecay",
           "make_optimizer", "precision", "squared_error"]
