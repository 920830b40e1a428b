"""Semi-supervised methods: what an unlabeled pool adds to a FineTuner's loss.

Both methods here are confidence-thresholded self-training, the rule FixMatch and
UDA share: the model in inference mode labels each unlabeled example (its most
probable class, kept only where that probability reaches `threshold`), and the model
in training mode learns to give that class. `PseudoLabel` labels and learns on the
same input (the noise is the model's own dropout); `Consistency` labels a weakly
augmented view and learns on a strongly augmented one (FixMatch for images; for
text, UDA's idea with token replacement as the augmentation).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.semi import views


def _threshold(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError("`threshold` must be a probability in (0, 1] (e.g. 0.95): "
                         f"unlabeled examples whose predicted class is at least this "
                         f"probable become pseudo-labels. Received: threshold={value!r}")
    return float(value)


class SemiSupervised:
    """Base of the semi-supervised methods (`pl.FineTuner(..., semi_supervised=...)`).

    Each training step reads `ratio` unlabeled examples per labeled one. The loss
    on them is the cross-entropy between the pseudo-labels of the weak view and the
    model's logits on the strong view, averaged over all unlabeled examples of the
    step (those below `threshold` count as 0), times `weight`; it is added to the
    labeled loss. `fit` reports it as `unlabeled_loss`, and the fraction of
    unlabeled examples above the threshold as `pseudo_label_rate`.

    With a `teacher` (a trained model, e.g. the FineTuner trained on the labels
    alone), the teacher gives the pseudo-labels instead of the model being trained:
    classic self-training, a fixed teacher teaching a fresh student (Noisy Student,
    with `Consistency`'s noise). The teacher is not saved with the FineTuner.

    Subclasses say what the two views are (`views`).

    Examples:
        >>> import pretrainlib as pl
        >>> class SameView(pl.semi.SemiSupervised):  # the weak view for both
        ...     pass
        >>> SameView(threshold=0.9)
        SameView(threshold=0.9, weight=1.0, ratio=1)
    """

    def __init__(self, threshold: float, weight: float = 1.0, ratio: int = 1,
                 teacher: keras.Model | None = None):
        self.threshold = _threshold(threshold)
        self.weight = validation.non_negative_float("weight", weight)
        self.ratio = validation.positive_int("ratio", ratio)
        self.teacher = validation.instance_of(
            "teacher", teacher, (keras.Model, type(None)),
            "a trained Keras model giving class logits (e.g. a fine-tuned FineTuner)")

    def labeler(self, model: keras.Model) -> keras.Model:
        """The model that gives the pseudo-labels: the `teacher`, or `model` itself."""
        return self.teacher if self.teacher is not None else model

    def views(self, kind: str, tokenizer=None):
        """`(weak, strong)`: functions of a batch of model inputs that run in tf.data
        (drawing from `pl.randomness`); `strong` None means the weak view serves
        both. `kind` is `"text"` or `"image"`."""
        return views.identity, None

    def unlabeled_loss(self, teacher_logits, student_logits):
        """`(loss, rate)`: the thresholded pseudo-label cross-entropy, averaged over
        every unlabeled example, and the fraction of examples kept.

        Examples:
            >>> import numpy as np, pretrainlib as pl
            >>> method = pl.semi.PseudoLabel(threshold=0.9)
            >>> teacher = np.log([[0.95, 0.05], [0.6, 0.4]])  # only the first is sure
            >>> student = np.log([[0.5, 0.5], [0.01, 0.99]])
            >>> loss, rate = method.unlabeled_loss(teacher, student)
            >>> round(float(loss), 4), float(rate)  # -log(0.5) / 2
            (0.3466, 0.5)
        """
        teacher = tf.cast(tf.convert_to_tensor(teacher_logits), "float32")
        student = tf.cast(tf.convert_to_tensor(student_logits), "float32")
        probabilities = tf.nn.softmax(tf.stop_gradient(teacher), axis=-1)
        kept = tf.cast(tf.reduce_max(probabilities, axis=-1) >= self.threshold, "float32")
        pseudo_labels = tf.argmax(probabilities, axis=-1)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=pseudo_labels, logits=student)
        return tf.reduce_mean(cross_entropy * kept), tf.reduce_mean(kept)

    def get_config(self) -> dict:
        return {"threshold": self.threshold, "weight": self.weight, "ratio": self.ratio}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                              if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({arguments})"


@keras.saving.register_keras_serializable(package="pretrainlib")
class PseudoLabel(SemiSupervised):
    """Self-training with a confidence threshold (pseudo-labeling).

    The model in inference mode labels each unlabeled example; where its top class
    is at least `threshold` probable, the model in training mode (dropout on) is
    trained towards that class. No augmentation, so it suits any input; with a
    backbone that has no dropout it sharpens the model's confident predictions.

    Args:
        threshold: the probability a prediction needs to become a pseudo-label, in
            (0, 1].
        weight: the unlabeled loss's weight against the labeled loss.
        ratio: unlabeled examples per labeled example in each step.
        teacher: a trained model whose predictions are the pseudo-labels (default:
            the model being trained).

    Examples:
        >>> import pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat"] * 4, [0, 1] * 4
        >>> pool = ["the dog is small", "a cat is large", "small dogs bark"] * 4
        >>> tok = pl.text.WordPieceTokenizer.train(texts + pool, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1,
        ...                                    hidden_dim=16, max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2),
        ...                   preprocessor=pl.text.TextPreprocessor(tok, 8),
        ...                   semi_supervised=pl.semi.PseudoLabel(threshold=0.6))
        >>> ft.compile(learning_rate=1e-2)
        >>> history = ft.fit(texts, labels, unlabeled=pool, epochs=2, verbose=0)
        >>> sorted(k for k in history.history if "label" in k)
        ['pseudo_label_rate', 'unlabeled_loss']
    """

    def __init__(self, threshold: float = 0.95, weight: float = 1.0, ratio: int = 1,
                 teacher: keras.Model | None = None):
        super().__init__(threshold, weight, ratio, teacher)


@keras.saving.register_keras_serializable(package="pretrainlib")
class Consistency(SemiSupervised):
    """Consistency training: pseudo-labels from a weak view, learned on a strong one.

    For images (FixMatch) the weak view is a flip and a shift; the strong view adds
    contrast and brightness changes and an erased patch. For text (UDA's idea) the
    weak view is the text itself and the strong view replaces a fraction
    `token_replacement` of its word pieces, half by `[MASK]` and half by word pieces
    drawn from the rest of the batch; it needs the tokenizer, which the FineTuner's
    `preprocessor` gives.

    Args:
        threshold: the probability a weak-view prediction needs to become a
            pseudo-label, in (0, 1].
        weight: the unlabeled loss's weight against the labeled loss.
        ratio: unlabeled examples per labeled example in each step.
        token_replacement: for text, the fraction of word pieces the strong view
            replaces, in (0, 1).
        weak: for images, Keras augmentation layers (a list) for the weak view,
            replacing the default; they see pixels scaled to [0, 1].
        strong: the same for the strong view.
        teacher: a trained model whose predictions on the weak view are the
            pseudo-labels (default: the model being trained).

    Examples:
        >>> import pretrainlib as pl
        >>> fm = pl.datasets.fashion_mnist()
        >>> labeled, pool = fm.train.sample(40, seed=0), fm.train.images[-64:]
        >>> ft = pl.FineTuner(pl.backbones.ConvNet(input_shape=(28, 28, 1), widths=(8,)),
        ...                   pl.heads.Classifier(10),
        ...                   semi_supervised=pl.semi.Consistency(threshold=0.5))
        >>> ft.compile(learning_rate=1e-3)
        >>> history = ft.fit(labeled.images / 255, labeled.labels, unlabeled=pool,
        ...                  batch_size=8, epochs=1, verbose=0)
        >>> 0 <= history.history["pseudo_label_rate"][-1] <= 1
        True
    """

    def __init__(self, threshold: float = 0.95, weight: float = 1.0, ratio: int = 2,
                 token_replacement: float = 0.2, weak: list | None = None,
                 strong: list | None = None, teacher: keras.Model | None = None):
        super().__init__(threshold, weight, ratio, teacher)
        self.token_replacement = validation.open_unit_interval("token_replacement",
                                                               token_replacement)
        self.weak = views.layer_list("weak", weak)
        self.strong = views.layer_list("strong", strong)

    def views(self, kind: str, tokenizer=None):
        if kind == "text":
            if tokenizer is None:
                raise ValueError(
                    "Consistency on text replaces word pieces, which needs the tokenizer: "
                    "give the FineTuner preprocessor=pl.text.TextPreprocessor(tokenizer), "
                    "or use pl.semi.PseudoLabel().")
            return views.identity, views.token_replacer(tokenizer, self.token_replacement)
        weak = self.weak if self.weak is not None else views.default_weak_layers()
        strong = self.strong if self.strong is not None else views.default_strong_layers()
        return views.augmenter(weak), views.augmenter(strong)

    def get_config(self) -> dict:
        serialize = keras.saving.serialize_keras_object
        return {**super().get_config(), "token_replacement": self.token_replacement,
                "weak": None if self.weak is None else [serialize(l) for l in self.weak],
                "strong": None if self.strong is None else [serialize(l) for l in self.strong]}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        for key in ("weak", "strong"):
            if config.get(key) is not None:
                config[key] = [keras.saving.deserialize_keras_object(l) for l in config[key]]
        return cls(**config)
