"""Several named heads on one backbone (multi-task fine-tuning)."""

from __future__ import annotations

import keras

from pretrainlib.heads.logits import LogitsDefaults
from pretrainlib.protocol import DeclaresLoss


@keras.saving.register_keras_serializable(package="pretrainlib")
class Heads(DeclaresLoss, keras.layers.Layer):
    """Named task heads that read the same backbone features: one output per head.

    A FineTuner given a dict of heads (`heads={"supersense": Classifier(6), "pos":
    Classifier(4)}`) wraps it in `Heads`: the model then outputs a dict, takes
    labels as a dict with the same names, trains on the sum of the heads' losses
    (`compile(loss_weights={"pos": 0.5})` weighs them), reports each head's metrics
    under its name (`supersense_macro_f1`, `val_pos_accuracy`), and the `Evaluator`
    returns a report per head. The heads form the policy's `head` group together.

    Args:
        heads: `{name: head}`, each a `pl.heads` head or a Keras layer giving logits.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> heads = pl.heads.Heads({"kind": pl.heads.Classifier(3),
        ...                         "size": pl.heads.Regressor()})
        >>> out = heads({"pooled_output": np.zeros((2, 8), "float32")})
        >>> {name: tuple(value.shape) for name, value in out.items()}
        {'kind': (2, 3), 'size': (2,)}
    """

    def __init__(self, heads: dict, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(heads, dict) or not heads:
            raise ValueError("`heads` must be a non-empty dict {name: head}. Received: "
                             f"heads={heads!r}")
        for name, head in heads.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"`heads` names must be identifiers (they name the model's "
                                 f"outputs and metrics). Received: {name!r}")
            if not isinstance(head, keras.layers.Layer):
                raise TypeError(f"`heads[{name!r}]` must be a Keras layer (e.g. "
                                f"pl.heads.Classifier(4)). Received: {type(head).__name__}")
        self.heads = dict(heads)

    @property
    def feature(self) -> str | None:
        """What the heads read, when they all read the same feature."""
        features = {getattr(head, "feature", None) for head in self.heads.values()}
        return features.pop() if len(features) == 1 else None

    def build(self, input_shape):
        self._features_shape = input_shape
        for head in self.heads.values():
            if not head.built:  # a loaded head comes built
                head.build(input_shape)
        self.built = True

    def call(self, features, training=None):
        return {name: head(features, training=training) for name, head in self.heads.items()}

    def compute_output_shape(self, input_shape):
        return {name: head.compute_output_shape(input_shape)
                for name, head in self.heads.items()}

    def task(self, name: str) -> DeclaresLoss:
        """What head `name` declares (classification on logits for a plain layer)."""
        head = self.heads[name]
        if isinstance(head, DeclaresLoss):
            return head
        return LogitsDefaults(head.compute_output_shape(self._features_shape)[-1])

    def default_loss(self):
        return {name: self.task(name).default_loss() for name in self.heads}

    def default_metrics(self):
        return {name: self.task(name).default_metrics() for name in self.heads}

    def default_weighted_metrics(self):
        return {name: self.task(name).default_weighted_metrics() for name in self.heads}

    def get_config(self):
        return {**super().get_config(),
                "heads": {name: keras.saving.serialize_keras_object(head)
                          for name, head in self.heads.items()}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Each head is rebuilt inside this layer's name scope, so its sublayers get the
        # paths they had when saved: a quantized head finds its layers' policies by them.
        with keras.name_scope(config.get("name") or "heads"):
            config["heads"] = {name: keras.saving.deserialize_keras_object(head)
                               for name, head in config["heads"].items()}
        return cls(**config)

    def __repr__(self) -> str:
        return "Heads(" + ", ".join(f"{name}={type(head).__name__}" for name, head
                                    in self.heads.items()) + ")"
