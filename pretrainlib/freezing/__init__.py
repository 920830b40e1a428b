"""The freezing policy object and its built-in policies."""

from pretrainlib.freezing.builtins import FeatureExtraction, FreezeThenUnfreeze, FullFineTune
from pretrainlib.freezing.callback import PolicyCallback
from pretrainlib.freezing.policy import FreezePolicy, Stage

__all__ = [
    "FeatureExtraction",
    "FreezePolicy",
    "FreezeThenUnfreeze",
    "FullFineTune",
    "PolicyCallback",
    "Stage",
]
