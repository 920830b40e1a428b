"""SimCLR: contrastive learning of image representations (Chen et al., 2020)."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.objectives.views import TwoViewObjective, encoder_with_projector, normalized


@keras.saving.register_keras_serializable(package="pretrainlib")
class SimCLR(TwoViewObjective):
    """Pull two augmented views of an image together, push other images away.

    Each image of a batch yields two views (`pl.data.contrastive_augmentation`:
    random resized crop, flip, colour distortion; or your own `augment` layers);
    the backbone's pooled features go through a projection MLP, and the NT-Xent
    loss asks each view to pick its partner out of the other `2N - 1` views of the
    batch by cosine similarity at `temperature`. Under a distribution strategy the
    views of every replica are gathered, so the negatives are the global batch's,
    as on one device (and larger batches help: SimCLR used thousands). The
    projection head is dropped after pretraining; keep `pretrainer.backbone`.
    Metric: `contrastive_accuracy`, how often the partner is the most similar view.

    Args:
        temperature: softmax temperature of the similarities (> 0).
        projection_dim: width of the projection (> 0).
        hidden_dim: width of the projection MLP's hidden layer (default: the
            backbone's feature width).
        augment: Keras layers that draw one view from an image (default:
            `pl.data.contrastive_augmentation` for the backbone's image shape).
        crop_scale: the default crop's area range, within (0, 1].
        jitter: the default colour distortion's strength, in [0, 1].

    Examples:
        >>> import pretrainlib as pl
        >>> images = pl.datasets.fashion_mnist().unlabeled[:64]
        >>> net = pl.backbones.ConvNet(widths=(8, 16))
        >>> pre = pl.Pretrainer(net, pl.objectives.SimCLR(temperature=0.5, projection_dim=16))
        >>> pre.compile(learning_rate=1e-3)
        >>> history = pre.fit(pl.data.image_dataset(images, batch_size=32), verbose=0)
        >>> sorted(history.history)
        ['contrastive_accuracy', 'loss']
    """

    def __init__(self, temperature: float = 0.5, projection_dim: int = 64,
                 hidden_dim: int | None = None, augment=None, crop_scale=(0.2, 1.0),
                 jitter: float = 0.4):
        super().__init__(augment, crop_scale, jitter, projection_dim, hidden_dim)
        self.temperature = validation.positive_float("temperature", temperature)

    def build(self, backbone: keras.Model):
        views = self.views_input(backbone)
        encoder = encoder_with_projector(backbone, self.projection_dim, self.hidden_dim,
                                         name="encoder")
        return views, self.encode_views(encoder, views)

    def loss(self):
        return NTXentLoss(self.temperature)

    def metrics(self) -> list:
        return [ContrastiveAccuracy(self.temperature)]

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


def contrastive_logits(projections, temperature: float):
    """`(logits, partners)` of NT-Xent for this replica's projections `[batch, 2, d]`:
    the cosine similarities / `temperature` of each of its `2 * batch` views to every
    view of the global batch (all replicas' views, gathered; a view's similarity to
    itself set to -1e9), and the index of each view's partner among them."""
    z = normalized(projections)
    local = tf.reshape(z, [-1, tf.shape(z)[-1]])  # rows: image 0 view 0, image 0 view 1, ...
    everything, offset = _gathered(local)
    logits = tf.matmul(local, everything, transpose_b=True) / temperature
    own = offset + tf.range(tf.shape(local)[0])
    logits = tf.where(tf.range(tf.shape(everything)[0])[None, :] == own[:, None], -1e9, logits)
    partners = tf.bitwise.bitwise_xor(own, 1)  # offsets are even: view 0 <-> view 1
    return logits, partners


def _gathered(local):
    """`local` rows of every replica, concatenated in replica order, and where this
    replica's rows begin; `(local, 0)` on one device. The gather passes gradients back
    to the replica that owns each row (TensorFlow's `all_gather` gradient)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local, tf.constant(0, "int32")
    everything = context.all_gather(local, axis=0)
    sizes = context.all_gather(tf.shape(local)[:1], axis=0)
    offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
    return everything, tf.cast(offset, "int32")


@keras.saving.register_keras_serializable(package="pretrainlib")
class NTXentLoss(keras.losses.Loss):
    """The normalized-temperature cross-entropy of SimCLR on projections `[batch, 2, d]`
    (labels are ignored); one value per image, the mean over its two views.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.simclr import NTXentLoss
        >>> pairs = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
        >>> round(float(NTXentLoss(temperature=0.1)(np.zeros(2), pairs)), 4)
        0.0001
    """

    def __init__(self, temperature: float = 0.5, name: str = "nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, projections):
        logits, partners = contrastive_logits(projections, self.temperature)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(partners, logits)
        return tf.reduce_mean(tf.reshape(loss, [-1, 2]), axis=1)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="pretrainlib")
class ContrastiveAccuracy(keras.metrics.MeanMetricWrapper):
    """How often a view's most similar other view (in the global batch) is its partner.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.simclr import ContrastiveAccuracy
        >>> metric = ContrastiveAccuracy()
        >>> metric.update_state(np.zeros(2), np.array([[[1.0, 0.0], [1.0, 0.1]],
        ...                                            [[0.0, 1.0], [0.1, 1.0]]]))
        >>> float(metric.result())
        1.0
    """

    def __init__(self, temperature: float = 0.5, name: str = "contrastive_accuracy",
                 **kwargs):
        super().__init__(_partner_found, name=name, temperature=temperature, **kwargs)
        self.temperature = temperature

    def get_config(self):
        return {"name": self.name, "temperature": self.temperature}


def _partner_found(y_true, projections, temperature=0.5):
    logits, partners = contrastive_logits(projections, temperature)
    found = tf.cast(tf.argmax(logits, axis=-1, output_type="int32") == partners, "float32")
    return tf.reduce_mean(tf.reshape(found, [-1, 2]), axis=1)
