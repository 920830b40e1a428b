"""Small task heads that sit on a backbone's features."""

from pretrainlib.heads.causal_lm_head import CausalLMHead
from pretrainlib.heads.classifier import Classifier
from pretrainlib.heads.cloze import ClozeClassifier
from pretrainlib.heads.multi import Heads
from pretrainlib.heads.regressor import Regressor

__all__ = ["CausalLMHead", "Classifier", "ClozeClassifier", "Heads", "Regressor"]
