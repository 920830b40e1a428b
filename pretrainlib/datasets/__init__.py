"""Real datasets shipped with the package, loaded offline."""

from pretrainlib.datasets.fashion_mnist import FashionMNIST, LabeledImages, fashion_mnist
from pretrainlib.datasets.wordnet import LabeledTexts, WordNetSupersenses, wordnet_supersenses

__all__ = ["FashionMNIST", "LabeledImages", "LabeledTexts", "WordNetSupersenses",
           "fashion_mnist", "wordnet_supersenses"]
