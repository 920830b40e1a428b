"""Classification head: features -> class logits."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.heads.dense_head import DenseHead
from pretrainlib.heads.logits import LogitsDefaults


@keras.saving.register_keras_serializable(package="pretrainlib")
class Classifier(DenseHead):
    """Dropout and a dense layer (optionally an MLP) from features to class logits.

    Takes a backbone's output: a tensor `[batch, features]` (a feature map
    `[batch, height, width, channels]` is averaged over positions first), or a dict
    from which it picks `feature` (for `pl.backbones.TextEncoder`, `"pooled_output"`, the
    masked mean of the final hidden states that MLM pretraining trains).
    Outputs logits. A FineTuner's defaults for it: sparse categorical
    cross-entropy on the logits, with accuracy and macro-F1 as metrics.

    Args:
        num_classes: number of classes (at least 2).
        feature: key to read when the backbone returns a dict.
        hidden_dim: optional width of one hidden layer before the output.
        dropout: dropout rate before each dense layer.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> head = pl.heads.Classifier(num_classes=3)
        >>> tuple(head({"pooled_output": np.zeros((2, 16), "float32")}).shape)
        (2, 3)
    """

    task = "classification"

    def __init__(self, num_classes: int, feature: str = "pooled_output",
                 hidden_dim: int | None = None, dropout: float = 0.1, **kwargs):
        validation.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(
                f"`num_classes` must be at least 2. Received: num_classes={num_classes}"
            )
        super().__init__(num_classes, feature=feature, hidden_dim=hidden_dim,
                         dropout=dropout, **kwargs)
        self.num_classes = num_classes

    def default_loss(self):
        return LogitsDefaults(self.num_classes).default_loss()

    def default_metrics(self) -> list:
        return LogitsDefaults(self.num_classes).default_metrics()

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
