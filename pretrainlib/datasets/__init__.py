"""Real datasets shipped with the package, loaded offline."""

from pretrainlib.datasets.fashion_mnist import FashionMNIST, LabeledImages, fashion_mnist
from pretrainlib.datasets.fortunes import FortuneTopics, fortune_topics
from pretrainlib.datasets.texts import LabeledTexts, TextClassificationTask
from pretrainlib.datasets.wordnet import (
    Definitions,
    WordNetDefinitions,
    WordNetSupersenses,
    wordnet_definitions,
    wordnet_supersenses,
)

__all__ = ["Definitions", "FashionMNIST", "FortuneTopics", "LabeledImages", "LabeledTexts",
           "TextClassificationTask", "WordNetDefinitions", "WordNetSupersenses",
           "fashion_mnist", "fortune_topics", "wordnet_definitions", "wordnet_supersenses"]
