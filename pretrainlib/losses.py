"""Weighted-mean losses whose divisor is the whole global batch's weight.

Keras's `reduction="mean_with_sample_weight"` divides each replica's weighted sum by
that replica's own weight total, then averages the replicas. When replicas hold
different numbers of weighted positions (masked tokens, masked patches, real tokens
in padded rows), that is not the mean over the global batch, and training under a
distribution strategy drifts from one device. These losses divide by the weight
summed over all replicas, so N replicas give one device's gradient.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


class GlobalWeightedMean:
    """Mixin for a `keras.losses.Loss` built with `reduction="mean_with_sample_weight"`.

    Examples:
        >>> import keras, numpy as np
        >>> from pretrainlib.losses import GlobalWeightedMean
        >>> class MaskedMSE(GlobalWeightedMean, keras.losses.MeanSquaredError):
        ...     pass
        >>> loss = MaskedMSE(reduction="mean_with_sample_weight")
        >>> float(loss(np.zeros((2, 1)), np.array([[2.0], [1.0]]), sample_weight=np.array([1, 0])))
        4.0
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        loss = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if sample_weight is None or replicas == 1:
            return loss
        # Keras returned sum / (local weight * replicas); make it sum / global weight.
        local = ops.cast(ops.sum(sample_weight), loss.dtype)
        total = tf.stop_gradient(context.all_reduce(tf.distribute.ReduceOp.SUM, local))
        return ops.divide_no_nan(loss * local * replicas, total)


@keras.saving.register_keras_serializable(package="pretrainlib")
class MaskedTokenCrossentropy(GlobalWeightedMean, keras.losses.SparseCategoricalCrossentropy):
    """Sparse cross-entropy from logits, averaged over the positions with weight
    (masked tokens, real tokens) across the whole global batch.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.losses import MaskedTokenCrossentropy
        >>> logits = np.array([[[0.0, 0.0], [9.0, -9.0]]])
        >>> round(float(MaskedTokenCrossentropy()(np.array([[0, 0]]), logits,
        ...                                       sample_weight=np.array([[1, 0]]))), 4)
        0.6931
    """

    def __init__(self, name: str = "masked_token_crossentropy", **kwargs):
        kwargs.setdefault("from_logits", True)
        kwargs["reduction"] = "mean_with_sample_weight"
        super().__init__(name=name, **kwargs)


def next_token_targets(batch):
    """`(inputs, targets, weights)` for next-token prediction from rows of tokens.

    Inputs are tokens `0..n-2`, targets tokens `1..n-1`; a target weighs 1 where it
    is a real token (any nonzero `padding_mask`: packed rows number their
    documents there) or, for rows of (prompt, target) pairs
    (`pl.data.prompt_dataset`), where its `target_mask` is set, so the prompt is
    never a target. Labels in a `(rows, labels)` pair are ignored.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.losses import next_token_targets
        >>> row = {"token_ids": np.array([[2, 7, 8, 3]]), "padding_mask": np.ones((1, 4)),
        ...        "target_mask": np.array([[0, 0, 1, 1]])}
        >>> inputs, targets, weights = next_token_targets(row)
        >>> np.asarray(targets).tolist(), np.asarray(weights).tolist()
        ([[7, 8, 3]], [[0.0, 1.0, 1.0]])
    """
    if isinstance(batch, tuple):  # labeled data: the labels are not used
        batch = batch[0]
    inputs = {"token_ids": batch["token_ids"][:, :-1],
              "padding_mask": batch["padding_mask"][:, :-1]}
    weights = batch.get("target_mask", batch["padding_mask"])[:, 1:]
    return inputs, batch["token_ids"][:, 1:], tf.cast(weights > 0, "float32")
