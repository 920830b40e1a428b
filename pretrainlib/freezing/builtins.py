"""The built-in freezing policies."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.freezing.policy import ALL, FreezePolicy, Stage


@keras.saving.register_keras_serializable(package="pretrainlib")
class FeatureExtraction(FreezePolicy):
    """Linear probe: the backbone stays frozen; only the head trains.

    Example:
    >>> import pretrainlib as pl
    >>> print(pl.freezing.FeatureExtraction().summary(["block_0", "head"]))
    stage  epochs  block_0  head
    0      0+      frozen   train
    """

    def __init__(self):
        super().__init__([Stage(0, ("head",))])

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="pretrainlib")
class FullFineTune(FreezePolicy):
    """Everything trains from the first step, at the same learning rate.

    Example:
    >>> import pretrainlib as pl
    >>> print(pl.freezing.FullFineTune().summary(["block_0", "head"]))
    stage  epochs  block_0  head
    0      0+      train    train
    """

    def __init__(self):
        super().__init__([Stage(0, ALL)])

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="pretrainlib")
class FreezeThenUnfreeze(FreezePolicy):
    """fastai's `fine_tune`: train the head on a frozen backbone, then everything.

    For `freeze_epochs` epochs only the head trains (it learns to read the
    pretrained features without its random gradients disturbing them); then the
    whole model trains, the backbone at `backbone_lr_multiplier` times the head's
    rate so the pretrained features move gently.

    Args:
        freeze_epochs: epochs with the backbone frozen (at least 1).
        backbone_lr_multiplier: learning-rate multiplier of the backbone groups
            after unfreezing, in (0, 1].

    Example:
    >>> import pretrainlib as pl
    >>> policy = pl.freezing.FreezeThenUnfreeze(freeze_epochs=2, backbone_lr_multiplier=0.5)
    >>> print(policy.summary(["block_0", "head"]))
    stage  epochs  block_0  head
    0      0-1     frozen   train
    1      2+      x0.5     train
    """

    def __init__(self, freeze_epochs: int = 1, backbone_lr_multiplier: float = 1.0):
        validation.positive_int("freeze_epochs", freeze_epochs)
        validation.positive_float("backbone_lr_multiplier", backbone_lr_multiplier)
        if backbone_lr_multiplier > 1:
            raise ValueError(
                "`backbone_lr_multiplier` must be in (0, 1]. "
                f"Received: backbone_lr_multiplier={backbone_lr_multiplier}"
            )
        self.freeze_epochs = freeze_epochs
        self.backbone_lr_multiplier = backbone_lr_multiplier
        super().__init__([
            Stage(0, ("head",)),
            Stage(freeze_epochs, ALL, {"backbone": backbone_lr_multiplier}),
        ])

    def get_config(self):
        return {"freeze_epochs": self.freeze_epochs,
                "backbone_lr_multiplier": self.backbone_lr_multiplier}
