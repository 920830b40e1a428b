"""Token embeddings from co-occurrence counts: PPMI + truncated SVD, in seconds.

Why this exists: on a CPU budget of minutes, masked-LM pretraining of a small
Transformer barely gets past predicting frequent tokens, and the token embeddings
it leaves behind carry almost no word meaning (on WordNet glosses a linear probe on
them scored below random embeddings). Counting which tokens occur near which, and
factorizing the positive pointwise mutual information (Levy, Goldberg and Dagan,
2015), yields embeddings where "mammal" sits near "bird" from the same unlabeled
texts in about half a minute. Used as the starting point of a `TextEncoder`'s token
embedding, they give masked-LM pretraining and fine-tuning a head start; see
docs/results.md for what each part contributes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.data import files

_BLOCK = 8192  # texts tokenized and counted at a time
_DENSE_BYTES = 2**28  # the largest dense count table (a 8,192-token vocabulary)


def cooccurrence_embeddings(
    texts,
    tokenizer,
    dim: int = 128,
    window: int = 5,
    smoothing: float = 0.75,
    norm: float = 1.0,
    iterations: int = 6,
    seed: int = 0,
    max_texts: int | None = None,
) -> np.ndarray:
    """Token embeddings `[tokenizer.vocab_size, dim]` from PPMI + truncated SVD.

    Counts token pairs at most `window` apart inside each text (symmetrically),
    turns the counts into positive pointwise mutual information with the context
    distribution raised to `smoothing` (word2vec's 0.75), and keeps the top `dim`
    singular directions, `U * sqrt(S)`, from a randomized SVD (Halko et al., 2011)
    with `iterations` power iterations. Every row is scaled to length `norm`; tokens
    that never occur next to another (special tokens among them) get random
    directions.

    Texts stream through in blocks: memory holds the distinct token pairs counted
    (at most `vocab_size`², far fewer in practice) and one block of texts, not the
    corpus.

    Args:
        texts: unlabeled texts: a list of strings, files (a path or glob as a
            `str`, a list of `pathlib.Path`, a `pl.data.TextFiles`) or a
            `tf.data.Dataset` of strings.
        tokenizer: a `pl.text.WordPieceTokenizer`.
        dim: embedding width (the encoder's `hidden_dim`).
        window: largest distance between two tokens counted as co-occurring.
        smoothing: exponent on the context distribution, in (0, 1].
        norm: length of every returned row.
        iterations: power iterations of the randomized SVD.
        seed: seed of the random projections and the random rows.
        max_texts: read at most this many texts (from files: spread evenly over
            the corpus).

    Examples:
        >>> import pretrainlib as pl
        >>> texts = ["a small dog barks", "a small cat mews", "the dog and the cat"] * 5
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> matrix = pl.text.cooccurrence_embeddings(texts, tok, dim=4)
        >>> matrix.shape == (tok.vocab_size, 4)
        True
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=4,
        ...                                    num_heads=1, max_sequence_length=8)
        >>> encoder.token_embedding.embeddings.assign(matrix)  # doctest: +ELLIPSIS
        <...>
    """
    validation.positive_int("dim", dim)
    validation.positive_int("window", window)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) \
            or not 0 < smoothing <= 1:
        raise ValueError(f"`smoothing` must be in (0, 1]. Received: smoothing={smoothing!r}")
    validation.positive_float("norm", norm)
    validation.positive_int("iterations", iterations)
    vocab_size = tokenizer.vocab_size
    if dim > vocab_size:
        raise ValueError(
            f"`dim` must be at most the vocabulary size {vocab_size}. Received: dim={dim}"
        )
    stream = files.iterate_texts("texts", texts, max_texts)
    pairs, counts = _pair_counts(stream, tokenizer, vocab_size, window)
    matrix = _ppmi(pairs, counts, vocab_size, smoothing)
    u, s = _randomized_svd(matrix, dim, iterations, seed)
    embeddings = u * np.sqrt(s)
    lengths = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unseen = lengths[:, 0] < 1e-12
    rng = np.random.default_rng(seed)
    embeddings[unseen] = rng.normal(size=(int(unseen.sum()), dim))
    lengths[unseen] = np.linalg.norm(embeddings[unseen], axis=1, keepdims=True)
    return (embeddings / lengths * norm).astype("float32")


def _pair_counts(texts, tokenizer, vocab_size: int, window: int):
    """Distinct token pairs (`left * vocab_size + right`, sorted) at most `window`
    apart in a text, both ways, and their counts, from `texts` in blocks.

    Counts go into a dense int32 `[vocab, vocab]` table when it takes at most
    `_DENSE_BYTES` (vocabularies up to 8,192 tokens): memory fixed by the
    vocabulary, whatever the corpus. Larger vocabularies merge sparse counts block
    by block (memory: the distinct pairs seen)."""
    blocks = (_block_pairs(tokenizer.token_ids(block), vocab_size, window)
              for block in _blocks(texts, _BLOCK))
    if vocab_size * vocab_size * 4 <= _DENSE_BYTES:
        table = np.zeros(vocab_size * vocab_size, "int32")
        for keys in blocks:
            found, times = np.unique(keys, return_counts=True)
            table[found] += times.astype("int32")
        pairs = np.flatnonzero(table)
        counts = table[pairs].astype("int64")
        del table
    else:
        pairs, counts, pending = np.zeros(0, "int64"), np.zeros(0, "int64"), []
        for keys in blocks:
            if keys.size:
                pending.append(np.unique(keys, return_counts=True))
            if sum(len(k) for k, _ in pending) > 4 * len(pairs) + _BLOCK * 16:
                pairs, counts = _merged(pairs, counts, pending)
                pending = []
        pairs, counts = _merged(pairs, counts, pending)
    if pairs.size == 0:
        raise ValueError(
            "`texts` hold no two tokens within `window` of each other in one text, so "
            "there is nothing to count. Pass more (or longer) texts."
        )
    return pairs, counts


def _blocks(texts, size: int):
    block = []
    for text in texts:
        block.append(text)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _block_pairs(docs: tf.RaggedTensor, vocab_size: int, window: int) -> np.ndarray:
    tokens = docs.flat_values.numpy().astype("int64")
    rows = docs.value_rowids().numpy()
    keys = []
    for distance in range(1, window + 1):
        same_text = rows[:-distance] == rows[distance:]
        a, b = tokens[:-distance][same_text], tokens[distance:][same_text]
        keys += [a * vocab_size + b, b * vocab_size + a]
    return np.concatenate(keys) if keys else np.zeros(0, "int64")


def _merged(pairs, counts, pending):
    """Counts of `pairs` plus those of each (pairs, counts) in `pending`."""
    if not pending:
        return pairs, counts
    keys = np.concatenate([pairs] + [k for k, _ in pending])
    weights = np.concatenate([counts] + [c for _, c in pending])
    merged, where = np.unique(keys, return_inverse=True)
    return merged, np.bincount(where, weights, len(merged)).astype("int64")


def _ppmi(pairs: np.ndarray, counts: np.ndarray, vocab_size: int, smoothing: float):
    """The PPMI matrix as a `tf.sparse.SparseTensor` `[vocab, vocab]`."""
    left, right = divmod(pairs, vocab_size)  # sorted: row-major order
    total = float(counts.sum())
    p_left = np.bincount(left, counts, vocab_size) / total
    context = np.bincount(right, counts, vocab_size) ** smoothing
    p_context = context / context.sum()
    # log(p(l, r) / (p(l) p_c(r))), term by term, to keep one array per pair alive
    pmi = np.log(counts / total)
    with np.errstate(divide="ignore"):  # tokens never seen: never indexed below
        pmi -= np.log(p_left)[left]
        pmi -= np.log(p_context)[right]
    keep = pmi > 0
    return tf.sparse.SparseTensor(
        indices=np.stack([left[keep], right[keep]], axis=1),
        values=pmi[keep].astype("float32"),
        dense_shape=[vocab_size, vocab_size],
    )


def _randomized_svd(matrix: tf.sparse.SparseTensor, rank: int, iterations: int, seed: int):
    """Top-`rank` left singular vectors and values of a sparse matrix (Halko et al.)."""
    size = int(matrix.dense_shape[1])
    width = min(size, rank + 10)  # oversampling

    def times(q, transpose=False):
        return tf.sparse.sparse_dense_matmul(matrix, q, adjoint_a=transpose).numpy()

    q = np.random.default_rng(seed).normal(size=(size, width)).astype("float32")
    q, _ = np.linalg.qr(times(q))
    for _ in range(iterations):
        q, _ = np.linalg.qr(times(q, transpose=True))
        q, _ = np.linalg.qr(times(q))
    small = times(q, transpose=True).T  # q^T M, [width, size]
    u, s, _ = np.linalg.svd(small, full_matrices=False)
    return (q @ u)[:, :rank], s[:rank]
