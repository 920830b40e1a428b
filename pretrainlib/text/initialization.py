"""Start a text backbone from co-occurrence embeddings: the warm start that pays."""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib.text.cooccurrence import cooccurrence_embeddings


def init_token_embeddings(backbone: keras.Model, texts, tokenizer, **kwargs) -> np.ndarray:
    """Sets `backbone.token_embedding` to co-occurrence embeddings of `texts`.

    Checks first that the backbone embeds the tokenizer's vocabulary, then computes
    `pl.text.cooccurrence_embeddings(texts, tokenizer, dim=<the embedding's width>,
    **kwargs)` and assigns it (tied output layers, as masked LM's, follow). Returns
    the matrix. This is the first step of the recipe that makes pretraining pay off
    on a CPU budget (see the results page); masked-LM pretraining comes next.

    Args:
        backbone: a text backbone with a `token_embedding` (e.g.
            `pl.backbones.TextEncoder`, KerasHub's BERT).
        texts: unlabeled texts (list of strings).
        tokenizer: the `pl.text.WordPieceTokenizer` the backbone was built for.
        **kwargs: `window`, `smoothing`, `norm`, `iterations`, `seed` of
            `cooccurrence_embeddings`.

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog barks", "a small cat mews", "the dog and the cat"] * 5
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=4,
        ...                                    num_heads=1, max_sequence_length=8)
        >>> pl.text.init_token_embeddings(encoder, texts, tok).shape == (tok.vocab_size, 4)
        True
    """
    embedding = getattr(backbone, "token_embedding", None)
    if embedding is None:
        raise ValueError(
            f"`backbone` {getattr(backbone, 'name', backbone)!r} has no `token_embedding` to "
            "initialize (pass a text backbone such as pl.backbones.TextEncoder).")
    if "dim" in kwargs:
        raise ValueError("`dim` comes from the backbone's embedding width; do not pass it.")
    rows, width = (int(d) for d in embedding.embeddings.shape)
    if rows != tokenizer.vocab_size:
        raise ValueError(
            f"The tokenizer has vocab_size={tokenizer.vocab_size}, but the backbone embeds "
            f"{rows} tokens. Build the backbone with vocab_size=tokenizer.vocab_size.")
    matrix = cooccurrence_embeddings(texts, tokenizer, dim=width, **kwargs)
    embedding.embeddings.assign(matrix)
    return matrix
