"""Seeded few-label draws shared by every bundled labeled dataset."""

from __future__ import annotations

import numpy as np


def sample_indices(labels: np.ndarray, num_classes: int, n: int, seed: int = 0,
                   stratified: bool = True) -> np.ndarray:
    """Indices of `n` examples drawn without replacement, shuffled.

    Stratified draws give each class its share of `n` (at least one example each,
    the rounding remainder to the largest shares), which a few-label benchmark needs.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= len(labels):
        raise ValueError(f"`n` must be an integer between 1 and {len(labels)}. Received: n={n!r}")
    rng = np.random.default_rng(seed)
    if not stratified:
        return rng.choice(len(labels), n, replace=False)
    fractions = np.bincount(labels, minlength=num_classes) / len(labels)
    counts = np.maximum(1, np.floor(fractions * n)).astype(int)
    while counts.sum() < n:
        counts[np.argmax(fractions * n - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    index = np.concatenate([
        rng.choice(np.flatnonzero(labels == c), k, replace=False)
        for c, k in enumerate(counts) if k
    ])
    return rng.permutation(index)
