"""The training step of a FineTuner that also learns from an unlabeled pool.

Batches arrive as `({"labeled": x, "unlabeled": views}, y[, sample_weight])`, the
views of the step's unlabeled block shaped `[batch, ratio, ...]` so that a
distribution strategy splits them with the labeled rows (see `join`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat

LABELED, UNLABELED = "labeled", "unlabeled"


def join(labeled_batch, views, ratio: int):
    """One element of the stream a semi-supervised `fit` reads: the labeled batch
    and the unlabeled views regrouped `[rows, ratio, ...]` (as many rows as the
    labeled batch has, which is fewer at the end of an epoch)."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(labeled_batch)
    rows = tf.shape(y)[0]

    def regroup(tensor):
        grouped = tf.reshape(tensor, tf.concat([[-1, ratio], tf.shape(tensor)[1:]], 0))
        return grouped[:rows]

    inputs = {LABELED: x, UNLABELED: _map_views(regroup, views)}
    return (inputs, y) if sample_weight is None else (inputs, y, sample_weight)


def is_joined(x) -> bool:
    return isinstance(x, dict) and set(x) == {LABELED, UNLABELED}


def _map_views(function, views) -> tuple:
    """`function` on every tensor of `views` (a tuple of tensors or dicts of them),
    keeping each dict's key order (the order the model's inputs were declared in;
    `tf.nest` would sort the keys and Keras warn about the structure)."""
    return tuple({key: function(value) for key, value in view.items()}
                 if isinstance(view, dict) else function(view) for view in views)


def _flat(views):
    return _map_views(lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0)), views)


class Trackers:
    """The epoch averages of the unlabeled loss and of the pseudo-label rate (kept
    apart from the model's metrics, so models trained without a pool log neither).

    Examples:
        >>> from pretrainlib.semi.step import Trackers
        >>> trackers = Trackers()
        >>> trackers.rate.update_state(0.5); trackers.rate.update_state(1.0)
        >>> float(trackers.rate.result())
        0.75
    """

    def __init__(self):
        self.loss = keras.metrics.Mean(name="unlabeled_loss")
        self.rate = keras.metrics.Mean(name="pseudo_label_rate")

    def reset(self):
        self.loss.reset_state()
        self.rate.reset_state()


class ResetTrackers(keras.callbacks.Callback):
    """Starts the trackers' averages afresh every epoch, as Keras does its metrics'.

    Examples:
        >>> from pretrainlib.semi.step import ResetTrackers, Trackers
        >>> trackers = Trackers()
        >>> trackers.loss.update_state(2.0)
        >>> ResetTrackers(trackers).on_epoch_begin(1)
        >>> float(trackers.loss.result())
        0.0
    """

    def __init__(self, trackers: Trackers):
        super().__init__()
        self.trackers = trackers

    def on_epoch_begin(self, epoch, logs=None):
        self.trackers.reset()


def train_step(model: keras.Model, data, method, trackers: Trackers) -> dict:
    """Keras's train step, plus `method.weight x` the unlabeled loss.

    The pseudo-labels come from the model (or the method's teacher) in inference
    mode on the weak view, outside the gradient; the unlabeled loss is averaged over the replica's
    unlabeled examples and scaled for the all-reduce as Keras scales its own loss.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    labeled, views = x[LABELED], _flat(x[UNLABELED])
    weak, strong = views[0], views[-1]
    teacher = tf.stop_gradient(method.labeler(model)(weak, training=False))
    with tf.GradientTape() as tape:
        y_pred = model(labeled, training=True)
        loss = keras_compat.compute_loss(model, labeled, y, y_pred, sample_weight)
        unlabeled, rate = method.unlabeled_loss(teacher, model(strong, training=True))
        total = loss + method.weight * keras_compat.scale_loss(unlabeled)
        scaled = model.optimizer.scale_loss(total)
    variables = model.trainable_weights
    gradients = tape.gradient(scaled, variables)
    model.optimizer.apply_gradients(zip(gradients, variables))
    rows = tf.shape(y)[0]
    keras_compat.loss_tracker(model).update_state(keras_compat.unscale_loss(total),
                                                  sample_weight=rows)
    trackers.loss.update_state(unlabeled)
    trackers.rate.update_state(rate)
    logs = model.compute_metrics(labeled, y, y_pred, sample_weight=sample_weight)
    return {**logs, "unlabeled_loss": trackers.loss.result(),
            "pseudo_label_rate": trackers.rate.result()}
