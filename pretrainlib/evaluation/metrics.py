"""Exact evaluation metrics by task, computed from per-example records.

The Evaluator streams a model's outputs batch by batch and keeps a few numbers per
example (a record: for a classifier the label, the prediction and the rank of the
true class; for a language model the summed token cross-entropy and the token
count; ...). Every metric is a function of those records, so it is exact over the
whole dataset (no average of per-batch values), and bootstrap confidence
intervals only resample example indices.
"""

from __future__ import annotations

import re

import numpy as np

TASKS = ("classification", "regression", "language_modeling", "reconstruction", "generation")
GENERATION = ("bleu", "sentence_bleu", "rouge_l")  # pl.evaluation.text_metrics, on texts


# === Records: model outputs -> a few numbers per example ===
def classification_records(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    true_score = logits[np.arange(len(labels)), labels]
    records = {
        "label": labels,
        "predicted": logits.argmax(axis=-1),
        "rank": (logits > true_score[:, None]).sum(axis=-1),  # 0: the top class
    }
    if logits.shape[-1] == 2:  # positive-class score for ROC-AUC
        records["score"] = logits[:, 1] - logits[:, 0]
    return records


def regression_records(predictions: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    predictions = predictions.reshape(len(predictions), -1).astype("float64")
    return {"target": targets.reshape(len(targets), -1).astype("float64"),
            "prediction": predictions}


def language_modeling_records(logits: np.ndarray, labels: np.ndarray,
                              weights: np.ndarray) -> dict[str, np.ndarray]:
    logits = logits.astype("float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1))
    label_logit = np.take_along_axis(shifted, labels[..., None], axis=-1)[..., 0]
    cross_entropy = log_norm - label_logit
    return {"cross_entropy": (cross_entropy * weights).sum(axis=-1),
            "tokens": weights.sum(axis=-1),
            "correct": ((logits.argmax(axis=-1) == labels) * weights).sum(axis=-1)}


def reconstruction_records(predictions: np.ndarray, targets: np.ndarray,
                           weights: np.ndarray | None) -> dict[str, np.ndarray]:
    error = (predictions.astype("float64") - targets.astype("float64")) ** 2
    if weights is None:
        weights = np.ones_like(error)
    else:
        while weights.ndim < error.ndim:
            weights = weights[..., None]
        weights = np.broadcast_to(weights, error.shape)
    axes = tuple(range(1, error.ndim))
    return {"squared_error": (error * weights).sum(axis=axes), "count": weights.sum(axis=axes)}


# === Metrics: records (an index selects the examples) -> one number ===
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
    """Unweighted mean F1 over the classes present in the labels or the predictions
    (scikit-learn's default of averaging over `unique(labels ∪ predictions)`)."""
    return averaged(confusion, "f1", "macro")


def averaged(confusion: np.ndarray, score: str, average: str) -> float:
    """Precision, recall or F1 averaged `macro`, `micro` or `weighted` (as sklearn)."""
    if average == "micro":  # single-label: every micro average is the accuracy
        return accuracy(confusion)
    table = per_class(confusion)
    if average == "weighted":
        support = table["support"]
        return float((table[score] * support).sum() / max(1, support.sum()))
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    return float(table[score][present].mean())


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half."""
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class, as sklearn warns
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    before = np.cumsum(counts) - counts
    ranks = (before + (counts + 1) / 2)[inverse]  # 1-based ranks, ties averaged
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def r2(target: np.ndarray, prediction: np.ndarray) -> float:
    """Coefficient of determination, averaged over outputs (sklearn's default)."""
    residual = ((target - prediction) ** 2).sum(axis=0)
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(total > 0, 1 - residual / total, np.where(residual > 0, 0.0, 1.0))
    return float(scores.mean())


def _classification(name: str):
    """The function for a classification metric name, or None."""
    top_k = re.fullmatch(r"top_(\d+)_accuracy", name)
    if top_k:
        k = int(top_k.group(1))
        return lambda r, n: float(np.mean(r["rank"] < k))
    if name == "accuracy":
        return lambda r, n: float(np.mean(r["label"] == r["predicted"]))
    average = re.fullmatch(r"(macro|micro|weighted)_(precision|recall|f1)", name)
    if average:
        scope, score = average.groups()
        return lambda r, n: averaged(confusion_matrix(r["label"], r["predicted"], n),
                                     score, scope)
    if name == "roc_auc":
        return lambda r, n: roc_auc(r["label"], r["score"])
    return None


_REGRESSION = {
    "mae": lambda r, n: float(np.mean(np.abs(r["target"] - r["prediction"]))),
    "rmse": lambda r, n: float(np.sqrt(np.mean((r["target"] - r["prediction"]) ** 2))),
    "r2": lambda r, n: r2(r["target"], r["prediction"]),
}
_LANGUAGE_MODELING = {
    "cross_entropy": lambda r, n: float(r["cross_entropy"].sum() / max(1, r["tokens"].sum())),
    "perplexity": lambda r, n: float(np.exp(r["cross_entropy"].sum()
                                            / max(1, r["tokens"].sum()))),
    "token_accuracy": lambda r, n: float(r["correct"].sum() / max(1, r["tokens"].sum())),
}
_RECONSTRUCTION = {
    "mse": lambda r, n: float(r["squared_error"].sum() / max(1, r["count"].sum())),
    "psnr": lambda r, n: float(np.mean(10 * np.log10(
        1.0 / np.maximum(r["squared_error"] / np.maximum(r["count"], 1), 1e-10))[
            r["count"] > 0])),
}
EXAMPLE_NAMES = ("accuracy", "top_5_accuracy", "macro_f1", "micro_f1", "weighted_f1",
                 "macro_precision", "macro_recall", "roc_auc", "mae", "rmse", "r2",
                 "cross_entropy", "perplexity", "token_accuracy", "mse", "psnr", *GENERATION)


def resolve(name: str):
    """`(task, function)` for a metric name; raises a `ValueError` listing the names."""
    function = _classification(name)
    if function is not None:
        return "classification", function
    for task, table in (("regression", _REGRESSION), ("language_modeling", _LANGUAGE_MODELING),
                        ("reconstruction", _RECONSTRUCTION)):
        if name in table:
            return task, table[name]
    if name in GENERATION:  # scored on texts (`Evaluator.evaluate_texts`), its options there
        return "generation", None
    raise ValueError(
        f"Unknown metric {name!r} in `metrics`. Known: {', '.join(EXAMPLE_NAMES)} "
        "(and top_<k>_accuracy, <macro|micro|weighted>_<precision|recall|f1>)."
    )


def select(records: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[index] for key, value in records.items()}
