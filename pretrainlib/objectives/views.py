"""What the two-view image objectives (SimCLR, BYOL, SimSiam) share: two augmented
views of every image, drawn in tf.data, and the projection MLP."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.backbones.outputs import image_input, model_input, pooled_features
from pretrainlib.data.augmentation import check_range, contrastive_augmentation
from pretrainlib.data.image import augmented, check_augment
from pretrainlib.objectives.objective import Objective


class TwoViewObjective(Objective):
    """Base of objectives that compare two augmented views of each image.

    `transform` turns a batch of images `[batch, h, w, c]` (labels, if any, are
    dropped) into views `[batch, 2, h, w, c]`, each view drawn from the batch's seed
    (see `pl.randomness`): new every epoch, the same on a rerun or a resume. The
    two views of an image stay on one row, so a distribution strategy that splits
    the batch keeps every pair on one replica. `encode_views` runs a network on both
    views at once and gives `[batch, 2, features]`. The projection MLP's widths,
    `projection_dim` and `hidden_dim`, are checked and saved here for every subclass.

    Examples:
        >>> import numpy as np, tensorflow as tf, pretrainlib as pl
        >>> from pretrainlib import randomness
        >>> objective = pl.objectives.SimCLR()
        >>> objective.validate_backbone(pl.backbones.ConvNet(widths=(8,)))
        >>> with randomness.batch_seed(tf.constant([0, 0])):
        ...     views, _ = objective.transform(np.zeros((4, 28, 28, 1), "float32"))
        >>> tuple(views.shape)
        (4, 2, 28, 28, 1)
    """

    def __init__(self, augment=None, crop_scale=(0.2, 1.0), jitter: float = 0.4,
                 projection_dim: int = 64, hidden_dim: int | None = None):
        self.projection_dim = validation.positive_int("projection_dim", projection_dim)
        self.hidden_dim = (None if hidden_dim is None
                           else validation.positive_int("hidden_dim", hidden_dim))
        self.augment = None if augment is None else check_augment(augment)
        self.crop_scale = check_range("crop_scale", crop_scale, upper=1.0)
        self.jitter = validation.unit_interval("jitter", jitter)
        self.view_layers = self.augment

    def validate_backbone(self, backbone: keras.Model) -> None:
        shape = tuple(image_input(backbone, type(self).__name__).shape[1:])
        if self.augment is None:
            self.view_layers = contrastive_augmentation(shape, self.crop_scale,
                                                        jitter=self.jitter)
        for layer in self.view_layers:  # a crop larger than the images fails here
            layer.build((None, *shape))

    def transform(self, batch):
        if isinstance(batch, tuple):  # labeled data: the labels are not used
            batch = batch[0]
        images = tf.cast(batch, "float32")
        views = tf.stack([augmented(images, self.view_layers) for _ in range(2)], axis=1)
        return views, tf.zeros(tf.shape(images)[:1], "int32")

    def views_input(self, backbone: keras.Model):
        shape = tuple(model_input(backbone).shape[1:])
        return keras.Input((2, *shape), name="views")

    @staticmethod
    def encode_views(network, views):
        """`network` on both views of `views` `[batch, 2, ...]`: `[batch, 2, features]`."""
        flat = keras.ops.reshape(views, (-1, *views.shape[2:]))
        features = network(flat)
        return keras.ops.reshape(features, (-1, 2, features.shape[-1]))

    def get_config(self) -> dict:
        return {"augment": (None if self.augment is None
                            else [keras.saving.serialize_keras_object(layer)
                                  for layer in self.augment]),
                "crop_scale": list(self.crop_scale), "jitter": self.jitter,
                "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if config.get("augment") is not None:
            config["augment"] = [keras.saving.deserialize_keras_object(layer)
                                 for layer in config["augment"]]
        return cls(**config)


def encoder_with_projector(backbone: keras.Model, projection_dim: int, hidden_dim: int | None,
                           name: str, widening: int = 1) -> keras.Model:
    """`backbone`'s pooled features through a projection MLP (Dense, BatchNorm, ReLU,
    Dense), as one functional model taking the backbone's input; the hidden layer is
    `hidden_dim` wide (default: `widening` times the features)."""
    inputs = model_input(backbone)
    features = pooled_features(backbone(inputs))
    projected = mlp(features, projection_dim, hidden_dim or widening * features.shape[-1],
                    "projector")
    return keras.Model(inputs, projected, name=name)


def mlp(x, output_dim: int, hidden_dim: int, name: str):
    """SimCLR v2's / BYOL's projection (and BYOL's prediction) MLP. Its BatchNorm is
    synchronized, so a distribution strategy normalizes over the global batch."""
    x = keras.layers.Dense(hidden_dim, use_bias=False, name=f"{name}_hidden")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=True,
                                        name=f"{name}_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.Dense(output_dim, name=f"{name}_output")(x)


def normalized(x):
    x = keras.ops.cast(x, "float32")
    return x / keras.ops.sqrt(keras.ops.maximum(keras.ops.sum(x * x, -1, keepdims=True),
                                                1e-12))
