"""The freezing policy object and its built-in policies."""

from pretrainlib.freezing.builtins import (
    BitFit,
    FeatureExtraction,
    FreezeThenUnfreeze,
    FullFineTune,
    GradualUnfreeze,
    LayerwiseLRDecay,
)
from pretrainlib.freezing.callback import PolicyCallback
from pretrainlib.freezing.peft import Adapter, Adapters, LoRA
from pretrainlib.freezing.policy import FreezePolicy, Stage

__all__ = [
    "Adapter",
    "Adapters",
    "BitFit",
    "FeatureExtraction",
    "FreezePolicy",
    "FreezeThenUnfreeze",
    "FullFineTune",
    "GradualUnfreeze",
    "LayerwiseLRDecay",
    "LoRA",
    "PolicyCallback",
    "Stage",
]
