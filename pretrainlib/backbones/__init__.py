"""Backbones: encoders that map inputs to features and expose ordered layer groups."""

from pretrainlib.backbones.layer_groups import layer_groups
from pretrainlib.backbones.text_encoder import TextEncoder

__all__ = ["TextEncoder", "layer_groups"]
