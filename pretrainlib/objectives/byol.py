"""Negative-free self-distillation: BYOL (Grill et al., 2020) and SimSiam (Chen & He,
2021)."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat, validation
from pretrainlib.backbones.cloning import clone
from pretrainlib.objectives.views import (
    TwoViewObjective,
    encoder_with_projector,
    mlp,
    normalized,
)


@keras.saving.register_keras_serializable(package="pretrainlib")
class BYOL(TwoViewObjective):
    """Predict a slowly moving target network's projection of the other view.

    The online network (backbone, projection MLP, prediction MLP) sees one view of
    each image and predicts the target network's projection of the other view; the
    loss is `2 - 2 cos(prediction, target)`, both ways round. No negatives are
    needed: the target's outputs pass through a stop-gradient, and the target
    (backbone and projector) is an exponential moving average of the online ones,
    `target = target_decay * target + (1 - target_decay) * online` after every
    optimizer step (BatchNorm statistics included). The target's weights are the
    Pretrainer's, so they are saved, checkpointed and resumed with it, and under a
    distribution strategy every copy is updated alike. Nothing in the target is
    trained by the optimizer; its BatchNorm layers normalize with the batch's
    statistics, as BYOL's do. After pretraining keep `pretrainer.backbone` (the
    online one).

    BYOL's paper anneals the decay from 0.996 to 1 over 1,000 ImageNet epochs; for
    runs of tens of epochs on small data a constant 0.99 follows the online network
    closely enough.

    Args:
        target_decay: the moving average's decay, in [0, 1) (0: the target is the
            online network of the step before).
        projection_dim: width of the projection and prediction (> 0).
        hidden_dim: hidden width of both MLPs (default: twice the backbone's
            feature width).
        augment: Keras layers that draw one view from an image (default:
            `pl.data.contrastive_augmentation`).
        crop_scale: the default crop's area range, within (0, 1].
        jitter: the default colour distortion's strength, in [0, 1].

    Examples:
        >>> import pretrainlib as pl
        >>> images = pl.datasets.fashion_mnist().unlabeled[:64]
        >>> net = pl.backbones.ConvNet(widths=(8, 16))
        >>> pre = pl.Pretrainer(net, pl.objectives.BYOL(target_decay=0.99, projection_dim=16))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.image_dataset(images, batch_size=32), verbose=0)
        >>> sorted(history.history)
        ['cosine_similarity', 'loss']
    """

    uses_target = True

    def __init__(self, target_decay: float = 0.99, projection_dim: int = 64,
                 hidden_dim: int | None = None, augment=None, crop_scale=(0.2, 1.0),
                 jitter: float = 0.4):
        super().__init__(augment, crop_scale, jitter, projection_dim, hidden_dim)
        if self.uses_target:
            decay = validation.unit_interval("target_decay", target_decay)
            if decay == 1.0:
                raise ValueError("`target_decay` must be in [0, 1): at 1 the target never "
                                 "moves. Received: target_decay=1.0")
            self.target_decay = decay
        self.online = self.target = None

    def build(self, backbone: keras.Model):
        views = self.views_input(backbone)
        self.online = encoder_with_projector(backbone, self.projection_dim, self.hidden_dim,
                                             name="online", widening=2)
        width = self.online.get_layer("projector_hidden").units
        projections = self.encode_views(self.online, views)
        predictor_input = keras.Input((self.projection_dim,))
        predictor = keras.Model(predictor_input, mlp(predictor_input, self.projection_dim,
                                                     width, "predictor"), name="predictor")
        predictions = self.encode_views(predictor, projections)
        if self.uses_target:
            self.target = clone(self.online)
            self.target.name = "target"
            self.target.trainable = False
            # BYOL's target normalizes with batch statistics, as the online network does
            # (with moving statistics it collapses sooner): BatchNorm layers run in
            # training mode, their scale and offset still out of the optimizer's reach.
            for layer in keras_compat.sublayers(self.target):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = True
                    for variable in layer.trainable_weights:
                        variable.trainable = False
            targets = self.encode_views(self.target, views)
        else:
            targets = projections
        # [batch, view, (prediction, target), features]; no gradient reaches the target.
        outputs = keras.ops.stack([predictions, keras.ops.stop_gradient(targets)], axis=2)
        return views, outputs

    def after_train_step(self, model: keras.Model) -> None:
        if not self.uses_target:
            return
        pairs = [(t, o) for t, o in zip(self.target.weights, self.online.weights)
                 if "float" in str(t.dtype)]
        keras_compat.moving_average_update([t for t, _ in pairs], [o for _, o in pairs],
                                           self.target_decay)

    def loss(self):
        return PredictionLoss()

    def metrics(self) -> list:
        return [keras.metrics.MeanMetricWrapper(_cosine, name="cosine_similarity")]

    def get_config(self) -> dict:
        config = super().get_config()
        if self.uses_target:
            config["target_decay"] = self.target_decay
        return config


@keras.saving.register_keras_serializable(package="pretrainlib")
class SimSiam(BYOL):
    """BYOL without a moving target: the online network's own projection of the other
    view, behind a stop-gradient, is the target (Chen & He, 2021). The stop-gradient
    alone keeps it from collapsing; it costs one network, not two.

    Args:
        projection_dim: width of the projection and prediction (> 0).
        hidden_dim: hidden width of both MLPs (default: twice the backbone's
            feature width).
        augment: Keras layers that draw one view from an image (default:
            `pl.data.contrastive_augmentation`).
        crop_scale: the default crop's area range, within (0, 1].
        jitter: the default colour distortion's strength, in [0, 1].

    Examples:
        >>> import pretrainlib as pl
        >>> net = pl.backbones.ConvNet(widths=(8, 16))
        >>> pre = pl.Pretrainer(net, pl.objectives.SimSiam(projection_dim=16))
        >>> pre.output_shape
        (None, 2, 2, 16)
    """

    uses_target = False

    def __init__(self, projection_dim: int = 64, hidden_dim: int | None = None, augment=None,
                 crop_scale=(0.2, 1.0), jitter: float = 0.4):
        super().__init__(None, projection_dim, hidden_dim, augment, crop_scale, jitter)


def _cosines(outputs):
    """`[batch, 2]`: each view's prediction against the other view's target."""
    predictions = normalized(outputs[:, :, 0])
    targets = normalized(outputs[:, ::-1, 1])
    return tf.reduce_sum(predictions * targets, axis=-1)


def _cosine(y_true, outputs):
    return tf.reduce_mean(_cosines(outputs), axis=1)


@keras.saving.register_keras_serializable(package="pretrainlib")
class PredictionLoss(keras.losses.Loss):
    """BYOL's loss on outputs `[batch, 2 views, (prediction, target), d]`: the mean
    over the two views of `2 - 2 cos(prediction of one view, target of the other)`
    (labels are ignored).

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.byol import PredictionLoss
        >>> same = np.ones((1, 2, 2, 3))  # predictions equal to the targets
        >>> round(float(PredictionLoss()(np.zeros(1), same)), 6)
        0.0
    """

    def __init__(self, name: str = "byol", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, outputs):
        return tf.reduce_mean(2.0 - 2.0 * _cosines(outputs), axis=1)
