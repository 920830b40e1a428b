"""Classification metrics computed exactly from a streamed confusion matrix."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[true, predicted]` pairs into a `num_classes x num_classes` matrix."""
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined, as sklearn)."""
    true_positive = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, true_positive / predicted, 0.0)
        recall = np.where(support > 0, true_positive / support, 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def accuracy(confusion: np.ndarray) -> float:
    return float(np.trace(confusion) / max(1, confusion.sum()))


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in the labels or the predictions.

    Classes that appear in neither contribute nothing (sklearn's default of
    averaging over `unique(labels ∪ predictions)`).
    """
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    return float(per_class(confusion)["f1"][present].mean())


CLASSIFICATION_METRICS = {"accuracy": accuracy, "macro_f1": macro_f1}
