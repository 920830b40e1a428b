"""Text preprocessing: tokenizers, preprocessors and co-occurrence token embeddings."""

from pretrainlib.text.cooccurrence import cooccurrence_embeddings
from pretrainlib.text.initialization import init_token_embeddings
from pretrainlib.text.preprocessor import TextPreprocessor
from pretrainlib.text.prompt import Prompt
from pretrainlib.text.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["Prompt", "TextPreprocessor", "WordPieceTokenizer", "cooccurrence_embeddings",
           "init_token_embeddings"]
