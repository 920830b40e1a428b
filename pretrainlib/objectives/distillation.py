"""Knowledge distillation: a student learns a teacher's soft predictions."""

from __future__ import annotations

import keras

from pretrainlib.backbones.outputs import call_inputs, model_input
from pretrainlib import validation
from pretrainlib.objectives.objective import Objective


@keras.saving.register_keras_serializable(package="pretrainlib")
class Distillation(Objective):
    """Train a (smaller) student backbone + head to match a teacher (Hinton et al.).

    The loss is `alpha * CE(labels, student) + (1 - alpha) * T**2 *
    KL(softmax(teacher / T) || softmax(student / T))`: soft targets at temperature
    `T` carry the teacher's knowledge of which wrong classes are close, the `T**2`
    keeps their gradients on the same scale as the hard-label term. With
    unlabeled data set `alpha=0`. The teacher (any Keras model with logits, e.g. a
    fine-tuned `pl.FineTuner`) is frozen and runs inside the training step on the
    same inputs as the student.

    Afterwards the student is `pretrainer.backbone` and its trained head is
    `objective.head`: `pl.FineTuner(student, objective.head, policy=...)` is the
    compressed classifier, ready to evaluate or fine-tune further.

    Args:
        teacher: a Keras model mapping the student's inputs to class logits.
        head: the student's head (default `pl.heads.Classifier(num_classes)` with
            the teacher's number of classes).
        temperature: softmax temperature of the soft targets (> 0).
        alpha: weight of the hard-label cross-entropy, in [0, 1].

    Examples:
        >>> import keras, numpy as np, tensorflow as tf, pretrainlib as pl
        >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
        >>> teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        >>> student = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> objective = pl.objectives.Distillation(teacher, temperature=2.0, alpha=0.0)
        >>> pre = pl.Pretrainer(student, objective)
        >>> pre.compile(learning_rate=1e-2)
        >>> history = pre.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), verbose=0)
        >>> sorted(history.history)
        ['agreement', 'loss']
    """

    def __init__(self, teacher: keras.Model, head: keras.layers.Layer | None = None,
                 temperature: float = 2.0, alpha: float = 0.5):
        if not isinstance(teacher, keras.Model):
            raise TypeError(
                "`teacher` must be a Keras model that outputs class logits (e.g. a "
                f"fine-tuned pl.FineTuner). Received: teacher of type {type(teacher).__name__}"
            )
        logits_shape = teacher.output_shape
        if not isinstance(logits_shape, tuple) or len(logits_shape) != 2 or not logits_shape[-1]:
            raise ValueError(
                "`teacher` must output logits [batch, num_classes]. Received: a teacher "
                f"with output shape {logits_shape}"
            )
        self.teacher = teacher
        self.teacher.trainable = False  # it only teaches
        self.num_classes = int(logits_shape[-1])
        self.temperature = validation.positive_float("temperature", temperature)
        self.alpha = validation.unit_interval("alpha", alpha)
        if head is None:
            from pretrainlib.heads.classifier import Classifier

            head = Classifier(self.num_classes, dropout=0.0, name="student_head")
        if not isinstance(head, keras.layers.Layer):
            raise TypeError("`head` must be a Keras layer mapping the student's features to "
                            f"{self.num_classes} logits (e.g. pl.heads.Classifier"
                            f"({self.num_classes})). Received: head={head!r}")
        self.head = head

    def validate_backbone(self, backbone: keras.Model) -> None:
        student, teacher = _input_shapes(backbone), _input_shapes(self.teacher)
        if student != teacher:
            raise ValueError(
                "The student backbone and the teacher must take the same inputs. "
                f"Received: student inputs {student}, teacher inputs {teacher}"
            )

    def transform(self, batch):
        if isinstance(batch, tuple):
            return batch[0], batch[1]
        if self.alpha > 0:
            raise ValueError(
                f"Distillation with alpha={self.alpha} mixes in hard labels: pass "
                "(inputs, labels) batches, or set alpha=0 for unlabeled data."
            )
        return batch, keras.ops.zeros(keras.ops.shape(keras.tree.flatten(batch)[0])[:1],
                                      "int32")

    def build(self, backbone: keras.Model):
        inputs, call = call_inputs(backbone)
        student = self.head(backbone(call))
        teacher = self.teacher(inputs, training=False)
        # One output holding both, so the loss sees the teacher's logits.
        return inputs, keras.ops.stack([student, keras.ops.cast(teacher, student.dtype)], 1)

    def loss(self):
        return DistillationLoss(self.temperature, self.alpha)

    def metrics(self) -> list:
        metrics = [TeacherAgreement()]
        if self.alpha > 0:
            metrics.insert(0, keras.metrics.MeanMetricWrapper(_student_accuracy,
                                                              name="accuracy"))
        return metrics

    def get_config(self) -> dict:
        return {"teacher": keras.saving.serialize_keras_object(self.teacher),
                "head": keras.saving.serialize_keras_object(self.head),
                "temperature": self.temperature, "alpha": self.alpha}

    @classmethod
    def from_config(cls, config: dict) -> "Distillation":
        config = dict(config)
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)


def _input_shapes(model: keras.Model):
    return keras.tree.map_structure(lambda t: tuple(t.shape[1:]), model_input(model))


def _student_accuracy(y_true, outputs):
    return keras.metrics.sparse_categorical_accuracy(y_true, outputs[:, 0])


@keras.saving.register_keras_serializable(package="pretrainlib")
class TeacherAgreement(keras.metrics.MeanMetricWrapper):
    """Fraction of examples where the student's top class is the teacher's.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.distillation import TeacherAgreement
        >>> m = TeacherAgreement()
        >>> m.update_state(np.zeros(2),
        ...                np.array([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]))
        >>> float(m.result())
        0.5
    """

    def __init__(self, name: str = "agreement", **kwargs):
        super().__init__(_agreement, name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}


def _agreement(y_true, outputs):
    student, teacher = outputs[:, 0], outputs[:, 1]
    return keras.ops.cast(keras.ops.argmax(student, -1) == keras.ops.argmax(teacher, -1),
                          "float32")


@keras.saving.register_keras_serializable(package="pretrainlib")
class DistillationLoss(keras.losses.Loss):
    """`alpha * CE(labels, student) + (1 - alpha) * T**2 * KL(teacher_T || student_T)`
    on stacked `[batch, 2, classes]` (student, teacher) logits.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.objectives.distillation import DistillationLoss
        >>> same = np.array([[[1.0, 2.0], [1.0, 2.0]]])  # the student matches the teacher
        >>> round(float(DistillationLoss(temperature=2.0, alpha=0.0)(np.zeros(1), same)), 6)
        0.0
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5, name: str = "distillation",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature, self.alpha = temperature, alpha

    def call(self, y_true, outputs):
        student, teacher = outputs[:, 0], outputs[:, 1]
        t = self.temperature
        soft_targets = keras.ops.softmax(teacher / t, axis=-1)
        log_student = keras.ops.log_softmax(student / t, axis=-1)
        log_targets = keras.ops.log_softmax(teacher / t, axis=-1)
        kl = keras.ops.sum(soft_targets * (log_targets - log_student), axis=-1)
        loss = (1 - self.alpha) * t * t * kl
        if self.alpha > 0:
            hard = keras.losses.sparse_categorical_crossentropy(y_true, student, from_logits=True)
            loss = loss + self.alpha * hard
        return loss

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}
