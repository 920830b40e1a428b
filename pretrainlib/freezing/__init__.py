"""Freezing policies (when each layer group trains) and parameter-efficient
transforms (what can train: LoRA, adapters, BitFit)."""

from pretrainlib.freezing.builtins import (
    FeatureExtraction,
    FreezeThenUnfreeze,
    FullFineTune,
    GradualUnfreeze,
    LayerwiseLRDecay,
)
from pretrainlib.freezing.callback import PolicyCallback
from pretrainlib.freezing.peft import Adapter, Adapters, BitFit, LoRA, Transform
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
    "Transform",
]
