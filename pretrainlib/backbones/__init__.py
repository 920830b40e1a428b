"""Backbones: encoders that map inputs to features and expose ordered layer groups."""

from pretrainlib.backbones.cloning import clone
from pretrainlib.backbones.conv_net import ConvNet
from pretrainlib.backbones.layer_groups import layer_groups
from pretrainlib.backbones.text_encoder import TextEncoder
from pretrainlib.backbones.vision_encoder import VisionEncoder

__all__ = ["ConvNet", "TextEncoder", "VisionEncoder", "clone", "layer_groups"]
