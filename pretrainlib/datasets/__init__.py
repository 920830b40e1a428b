"""Real datasets shipped with the package, loaded offline."""

from pretrainlib.datasets.fashion_mnist import FashionMNIST, LabeledImages, fashion_mnist
from pretrainlib.datasets.wordnet import (
    Definitions,
    LabeledTexts,
    WordNetDefinitions,
    WordNetSupersenses,
    wordnet_definitions,
    wordnet_supersenses,
)

__all__ = ["Definitions", "FashionMNIST", "LabeledImages", "LabeledTexts", "WordNetDefinitions",
           "WordNetSupersenses", "fashion_mnist", "wordnet_definitions", "wordnet_supersenses"]
