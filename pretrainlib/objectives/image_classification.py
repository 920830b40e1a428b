"""Supervised pretraining: classify a labeled source set, keep the backbone."""

from __future__ import annotations

import keras

from pretrainlib import validation
from pretrainlib.backbones.outputs import image_input, model_input, pooled_features
from pretrainlib.objectives.objective import Objective


@keras.saving.register_keras_serializable(package="pretrainlib")
class ImageClassification(Objective):
    """Supervised pretraining on labeled source images (as ImageNet pretraining is).

    The training model is the backbone's pooled features, dropout and a dense
    softmax layer; that classification head is dropped after pretraining and the
    backbone is transferred to the target task. Batches are `(images, labels)`,
    e.g. from `pl.data.image_dataset(images, labels)` (augmentation there).

    Args:
        num_classes: classes of the source task.
        dropout: dropout before the classification layer.
        label_smoothing: cross-entropy label smoothing.

    Examples:
        >>> import pretrainlib as pl
        >>> source = pl.datasets.fashion_mnist().train.classes([0, 1, 2, 3, 4]).sample(64)
        >>> net = pl.backbones.ConvNet(widths=(8, 16))
        >>> pre = pl.Pretrainer(net, pl.objectives.ImageClassification(num_classes=5))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.image_dataset(source.images, source.labels), verbose=0)
        >>> sorted(history.history)
        ['accuracy', 'loss']
    """

    def __init__(self, num_classes: int, dropout: float = 0.0, label_smoothing: float = 0.0):
        validation.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(
                f"`num_classes` must be at least 2. Received: num_classes={num_classes}")
        self.num_classes = num_classes
        self.dropout = validation.unit_interval("dropout", dropout)
        self.label_smoothing = validation.unit_interval("label_smoothing", label_smoothing)

    def validate_backbone(self, backbone: keras.Model) -> None:
        image_input(backbone, "ImageClassification")

    def transform(self, batch):
        if not isinstance(batch, tuple) or len(batch) != 2:
            raise ValueError(
                "ImageClassification trains on labeled batches (images, labels), e.g. "
                "pl.data.image_dataset(images, labels). Received a batch without labels."
            )
        return batch

    def build(self, backbone: keras.Model):
        inputs = model_input(backbone)
        x = pooled_features(backbone(inputs))
        x = keras.layers.Dropout(self.dropout, name="source_dropout")(x)
        return inputs, keras.layers.Dense(self.num_classes, name="source_logits")(x)

    def loss(self):
        if self.label_smoothing:
            # Keras's smoothing needs one-hot labels; sparse labels get it this way.
            return _SparseSmoothedCrossentropy(self.num_classes, self.label_smoothing)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "dropout": self.dropout,
                "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="pretrainlib")
class _SparseSmoothedCrossentropy(keras.losses.Loss):
    def __init__(self, num_classes: int, label_smoothing: float, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"),
                                    self.num_classes)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}
