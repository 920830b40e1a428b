"""Small task heads that sit on a backbone's features."""

from pretrainlib.heads.classifier import Classifier

__all__ = ["Classifier"]
