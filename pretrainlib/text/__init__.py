"""Text preprocessing: tokenizers."""

from pretrainlib.text.word_piece_tokenizer import WordPieceTokenizer

__all__ = ["WordPieceTokenizer"]
