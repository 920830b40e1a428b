"""Text preprocessing: tokenizers and co-occurrence token embeddings."""

from pretrainlib.text.cooccurrence import cooccurrence_embeddings
from pretrainlib.text.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["WordPieceTokenizer", "cooccurrence_embeddings"]
