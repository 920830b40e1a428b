"""The built-in freezing policies."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.freezing.policy import ALL, FreezePolicy, Stage


@keras.saving.register_keras_serializable(package="pretrainlib")
class FeatureExtraction(FreezePolicy):
    """Linear probe: the backbone stays frozen; only the head trains.

    Examples:
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

    Examples:
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

    Examples:
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


@keras.saving.register_keras_serializable(package="pretrainlib")
class GradualUnfreeze(FreezePolicy):
    """ULMFiT's gradual unfreezing: the head first, then one group more per stage,
    from the top of the backbone down, until everything trains.

    Args:
        every_epochs: epochs per stage.

    Examples:
        >>> import pretrainlib as pl
        >>> policy = pl.freezing.GradualUnfreeze(every_epochs=2)
        >>> print(policy.summary(["embeddings", "block_0", "head"]))
        stage  epochs  embeddings  block_0  head
        0      0-1     frozen      frozen   train
        1      2-3     frozen      train    train
        2      4+      train       train    train
    """

    def __init__(self, every_epochs: int = 1):
        self.every_epochs = validation.positive_int("every_epochs", every_epochs)
        super().__init__(None)

    def stages_for(self, groups):
        if groups is None:
            return super().stages_for(groups)
        backbone = [g for g in groups if g != "head"]
        return [Stage(k * self.every_epochs, ("head", *backbone[len(backbone) - k:]))
                for k in range(len(backbone) + 1)]

    def get_config(self):
        return {"every_epochs": self.every_epochs}


@keras.saving.register_keras_serializable(package="pretrainlib")
class LayerwiseLRDecay(FreezePolicy):
    """Discriminative learning rates (ULMFiT, ELECTRA, BEiT): everything trains, each
    backbone group at `decay` times the rate of the group above it.

    With groups `embeddings, block_0, block_1, head` the multipliers are
    `decay**3, decay**2, decay, 1`: the lowest, most general features move least.

    Args:
        decay: ratio between neighbouring groups, in (0, 1].
        freeze_epochs: optional epochs that train the head alone first.

    Examples:
        >>> import pretrainlib as pl
        >>> print(pl.freezing.LayerwiseLRDecay(0.5).summary(["embeddings", "block_0", "head"]))
        stage  epochs  embeddings  block_0  head
        0      0+      x0.25       x0.5     train
    """

    def __init__(self, decay: float = 0.8, freeze_epochs: int = 0):
        validation.positive_float("decay", decay)
        if decay > 1:
            raise ValueError(f"`decay` must be in (0, 1]. Received: decay={decay}")
        self.decay = decay
        self.freeze_epochs = validation.non_negative_int("freeze_epochs", freeze_epochs)
        super().__init__(None)

    def stages_for(self, groups):
        if groups is None:
            return super().stages_for(groups)
        backbone = [g for g in groups if g != "head"]
        n = len(backbone)
        rates = {g: self.decay ** (n - i) for i, g in enumerate(backbone)}
        stages = [Stage(0, ("head",))] if self.freeze_epochs else []
        return stages + [Stage(self.freeze_epochs, ALL, rates)]

    def get_config(self):
        return {"decay": self.decay, "freeze_epochs": self.freeze_epochs}
