"""Real datasets shipped with the package, loaded offline."""

from pretrainlib.datasets.wordnet import LabeledTexts, WordNetSupersenses, wordnet_supersenses

__all__ = ["LabeledTexts", "WordNetSupersenses", "wordnet_supersenses"]
