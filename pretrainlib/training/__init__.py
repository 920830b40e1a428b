"""The training core: optimizers, schedules and compile defaults."""

from pretrainlib.training import precision
from pretrainlib.training.checkpoint import Checkpoint, NonFiniteLossGuard
from pretrainlib.training.core import TrainingCore, make_optimizer
from pretrainlib.training.losses import GlobalWeightedMean, MaskedTokenCrossentropy
from pretrainlib.training.metrics import PSNR, MacroF1, squared_error
from pretrainlib.training.optimizers import SGD, AdamW
from pretrainlib.training.schedules import WarmupLinearDecay

__all__ = ["PSNR", "SGD", "AdamW", "Checkpoint", "GlobalWeightedMean", "MacroF1",
           "MaskedTokenCrossentropy", "NonFiniteLossGuard", "TrainingCore",
           "WarmupLinearDecay",
           "make_optimizer", "precision", "squared_error"]
