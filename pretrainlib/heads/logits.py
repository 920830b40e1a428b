"""The defaults for a head that is any Keras layer giving class logits."""

from __future__ import annotations

import keras

from pretrainlib.metrics import MacroF1
from pretrainlib.protocol import DeclaresLoss


class LogitsDefaults(DeclaresLoss):
    """Sparse categorical cross-entropy on logits, accuracy and macro-F1: what a
    FineTuner compiles with when its head is a plain Keras layer (e.g.
    `keras.layers.Dense(4)` on pooled features).

    Examples:
        >>> from pretrainlib.heads.logits import LogitsDefaults
        >>> [m.name for m in LogitsDefaults(num_classes=4).default_metrics()]
        ['accuracy', 'macro_f1']
    """

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def default_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                MacroF1(self.num_classes)]
