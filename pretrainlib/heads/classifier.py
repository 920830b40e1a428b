"""Classification head: features -> class logits."""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib import validation
from pretrainlib.heads.dense_head import DenseHead
from pretrainlib.heads.logits import LogitsDefaults


@keras.saving.register_keras_serializable(package="pretrainlib")
class Classifier(DenseHead):
    """Dropout and a dense layer (optionally an MLP) from features to class logits.

    Takes a backbone's output: a tensor `[batch, features]` (a feature map
    `[batch, height, width, channels]` is averaged over positions first), or a dict
    from which it picks `feature` (for `pl.backbones.TextEncoder`, `"pooled_output"`, the
    masked mean of the final hidden states that MLM pretraining trains).
    Outputs logits. A FineTuner's defaults for it: sparse categorical
    cross-entropy on the logits, with accuracy and macro-F1 as metrics.

    Args:
        num_classes: number of classes (at least 2).
        feature: key to read when the backbone returns a dict.
        hidden_dim: optional width of one hidden layer before the output.
        dropout: dropout rate before each dense layer.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> head = pl.heads.Classifier(num_classes=3)
        >>> tuple(head({"pooled_output": np.zeros((2, 16), "float32")}).shape)
        (2, 3)
    """

    task = "classification"

    def __init__(self, num_classes: int, feature: str = "pooled_output",
                 hidden_dim: int | None = None, dropout: float = 0.1, **kwargs):
        validation.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(
                f"`num_classes` must be at least 2. Received: num_classes={num_classes}"
            )
        super().__init__(num_classes, feature=feature, hidden_dim=hidden_dim,
                         dropout=dropout, **kwargs)
        self.num_classes = num_classes

    def default_loss(self):
        return LogitsDefaults(self.num_classes).default_loss()

    def default_metrics(self) -> list:
        return LogitsDefaults(self.num_classes).default_metrics()

    def calibrate(self, model: keras.Model, x, prior=None, **predict_kwargs) -> np.ndarray:
        """Shift the class biases so that `model`'s average prediction on `x` is `prior`.

        `model` is the model this head sits in (a FineTuner); `x` is what its
        `predict` takes: unlabeled examples of the task (batch calibration, Zhou et
        al. 2023) or a few content-free inputs such as `["", "N/A"]` (contextual
        calibration, Zhao et al. 2021). Each class's logit moves by one amount, the
        fixed point of batch calibration's step `log(prior) - log(mean prediction on
        x)` (found by Newton's method), so that the mean prediction on `x` equals
        `prior`: each class's probability is divided by how much the model favours
        it on `x` regardless of content. This corrects the
        class bias of a zero-shot `ClozeClassifier` (a masked LM favours frequent
        words) or of a classifier trained on another class balance; it changes
        nothing else and saves with the head. Labels are never read.

        Args:
            model: the model whose `head` is this head.
            x: inputs to predict on (texts, arrays or a `tf.data.Dataset`; labels, if
                it yields any, are ignored).
            prior: the class distribution to match, one positive number per class
                (default: uniform).
            **predict_kwargs: passed to `model.predict` (e.g. `batch_size`).

        Returns:
            The shift added to each class's bias.

        Examples:
            >>> import numpy as np, pretrainlib as pl
            >>> import keras
            >>> backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
            >>> ft = pl.FineTuner(backbone, pl.heads.Classifier(2, dropout=0.0))
            >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
            >>> shift = ft.head.calibrate(ft, x, prior=[0.9, 0.1])
            >>> logits = ft.predict(x, verbose=0)
            >>> mean = keras.ops.convert_to_numpy(keras.ops.softmax(logits)).mean(0)
            >>> [round(float(p), 1) for p in mean]
            [0.9, 0.1]
        """
        if getattr(model, "head", None) is not self:
            raise ValueError(
                "`model` must be the model this head sits in (its `head` is this "
                f"{type(self).__name__}). Received: {type(model).__name__}")
        prior = np.full(self.num_classes, 1.0 / self.num_classes) if prior is None else (
            np.asarray(prior, "float64"))
        if prior.shape != (self.num_classes,) or not np.all(prior > 0):
            raise ValueError(
                f"`prior` must hold one positive number per class ({self.num_classes}). "
                f"Received: prior={prior.tolist()}")
        empty = "`x` is empty: pass at least one input to calibrate on."
        if hasattr(x, "__len__") and not isinstance(x, dict) and len(x) == 0:
            raise ValueError(empty)  # before `predict`, whose error would not say so
        predict_kwargs.setdefault("verbose", 0)
        logits = np.asarray(model.predict(x, **predict_kwargs), "float64")
        if logits.shape[0] == 0:  # an empty dataset
            raise ValueError(empty)
        shift = _matching_shift(logits, prior / prior.sum())
        bias = self.logits.bias
        bias.assign(np.asarray(bias) + shift.astype(bias.dtype))
        return shift

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _matching_shift(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The shift `s` of every row's logits with `mean(softmax(logits + s)) = target`:
    the minimum of the convex `mean(logsumexp(logits + s)) - target @ s`, by Newton's
    method with backtracking (batch calibration's one step, repeated, crawls when the
    model is very sure)."""
    def objective(s):
        z = logits + s
        top = z.max(axis=-1)
        return np.mean(top + np.log(np.exp(z - top[:, None]).sum(-1))) - target @ s

    shift = np.zeros_like(target)
    for _ in range(100):
        p = _softmax(logits + shift)
        gradient = p.mean(axis=0) - target
        if np.max(np.abs(gradient)) < 1e-7:
            break
        hessian = np.diag(p.mean(axis=0)) - p.T @ p / len(p)
        step = -np.linalg.lstsq(hessian + 1e-12 * np.eye(len(target)), gradient,
                                rcond=None)[0]
        size, now = 1.0, objective(shift)
        while objective(shift + size * step) > now + 1e-4 * size * (gradient @ step):
            size /= 2
            if size < 1e-10:
                break
        shift = shift + size * step
    return shift - shift.mean()
