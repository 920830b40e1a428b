"""Evaluator: stream a model's predictions over a dataset into a Report."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.evaluation import metrics as metric_fns
from pretrainlib.evaluation.report import Report


class Evaluator:
    """Evaluates any Keras classifier on a `tf.data.Dataset` of `(inputs, labels)`.

    Predictions are streamed batch by batch into a confusion matrix, from which
    every metric is computed exactly (no per-batch averaging).

    Args:
        metrics: names from `"accuracy"`, `"macro_f1"`.
        class_names: optional names for the per-class table and plots.

    Example:
    >>> import numpy as np, keras, tensorflow as tf, pretrainlib as pl
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.random.rand(10, 4).astype("float32"), np.arange(10) % 3)).batch(4)
    >>> report = pl.Evaluator(metrics=["accuracy", "macro_f1"]).evaluate(model, ds)
    >>> sorted(report.metrics), report.num_examples
    (['accuracy', 'macro_f1'], 10)
    """

    def __init__(self, metrics: Sequence[str] = ("accuracy", "macro_f1"),
                 class_names: Sequence[str] | None = None):
        if isinstance(metrics, str):
            metrics = [metrics]
        for name in metrics:
            validation.one_of("metrics", name, metric_fns.CLASSIFICATION_METRICS)
        self.metrics = list(metrics)
        self.class_names = tuple(class_names) if class_names else None

    def evaluate(self, model: keras.Model, dataset: tf.data.Dataset) -> Report:
        """Runs `model` over `dataset` and returns a `Report`."""
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(
                "`dataset` must be a tf.data.Dataset of (inputs, labels). "
                f"Received: dataset of type {type(dataset).__name__}"
            )
        labels, predictions = [], []
        for batch in dataset:
            if not isinstance(batch, tuple) or len(batch) < 2:
                raise ValueError(
                    "`dataset` must yield (inputs, labels) pairs; it yielded a "
                    f"{type(batch).__name__}."
                )
            x, y = batch[0], batch[1]
            logits = np.asarray(model.predict_on_batch(x))
            y = np.asarray(y).reshape(-1)
            if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
                raise ValueError(
                    f"The model's outputs {logits.shape} do not match the labels "
                    f"{y.shape}: expected [batch, num_classes] logits for [batch] labels."
                )
            labels.append(y.astype("int64"))
            predictions.append(logits.argmax(axis=-1))
        if not labels:
            raise ValueError("`dataset` is empty; it yielded no batch.")
        labels, predictions = np.concatenate(labels), np.concatenate(predictions)
        num_classes = max(int(logits.shape[-1]), int(labels.max()) + 1)
        confusion = metric_fns.confusion_matrix(labels, predictions, num_classes)
        values = {name: metric_fns.CLASSIFICATION_METRICS[name](confusion)
                  for name in self.metrics}
        return Report(values, confusion, self.class_names, int(labels.shape[0]))
