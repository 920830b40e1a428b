"""The train step that skips a batch whose loss or gradient is not finite."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import keras_compat


def skipping_train_step(model: keras.Model, data) -> dict:
    """Keras's train step, except that a bad batch changes nothing.

    A batch is bad when its loss is not finite, or (without loss scaling) any
    gradient is not finite. It then changes no weight, optimizer slot, BatchNorm
    statistic or metric, is left out of the reported loss, and the step returns
    `skipped=1`. Under `mixed_float16` an overflow of the *scaled* gradients with a
    finite loss is routine: it goes to Keras's `LossScaleOptimizer`, which skips
    the update and lowers the scale, and counts as trained; a non-finite loss also
    reaches it, so the scale shrinks there too.

    Written out (after keras/src/backend/tensorflow/trainer.py) because skipping
    inside the optimizer, as LossScaleOptimizer does, would still let the forward
    pass move BatchNorm statistics to NaN and count the batch in the loss.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    state = list(model.non_trainable_variables)
    saved = [tf.identity(v.value) for v in state]
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = keras_compat.compute_loss(model, x, y, y_pred, sample_weight)
        scaled = model.optimizer.scale_loss(loss)
    variables = model.trainable_weights
    gradients = tape.gradient(scaled, variables)
    scaling = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    checked = [loss] if scaling else [loss, *gradients]
    good = tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in checked
                          if t is not None])

    def apply():
        model.optimizer.apply_gradients(zip(gradients, variables))
        return tf.constant(0.0)

    def skip():
        for variable, value in zip(state, saved):
            variable.assign(value)
        if scaling:  # non-finite gradients: it skips the update and lowers the scale
            model.optimizer.apply_gradients(zip(gradients, variables))
        return tf.constant(1.0)

    skipped = tf.cond(good, apply, skip)
    batch = tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0]
    keras_compat.loss_tracker(model).update_state(
        tf.where(good, keras_compat.unscale_loss(loss), 0.0),
        sample_weight=tf.where(good, batch, 0))
    logs = tf.cond(good,
                   lambda: model.compute_metrics(x, y, y_pred, sample_weight=sample_weight),
                   model.get_metrics_result)
    return {**logs, "skipped": skipped}
