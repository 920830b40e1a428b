"""FineTuner: backbone + head + freezing policy, trained on labeled data."""

from __future__ import annotations

import keras
import numpy as np

from pretrainlib import backbones, validation
from pretrainlib.backbones.layer_groups import layer_groups
from pretrainlib.backbones.outputs import call_inputs
from pretrainlib.freezing.builtins import FreezeThenUnfreeze
from pretrainlib.freezing.callback import (
    PolicyCallback,
    apply_stage,
    trainable_candidates,
    variables_ever_trained,
)
from pretrainlib.freezing.policy import FreezePolicy
from pretrainlib.training.core import TrainingCore, bounded, dataset_length
from pretrainlib.training import feature_cache, summary
from pretrainlib.training.metrics import MacroF1


@keras.saving.register_keras_serializable(package="pretrainlib")
class FineTuner(TrainingCore, keras.Model):
    """A backbone with a task head, fine-tuned under a freezing policy; a Keras model.

    `fit` takes a `tf.data.Dataset` of `(inputs, labels)` (e.g. from
    `pl.data.text_dataset(texts, tok, labels=...)`) and applies `policy` through a
    callback that composes with your own callbacks. Layer groups are the
    backbone's `layer_groups` plus `"head"`.

    `compile()` defaults: AdamW with per-variable bias correction (so groups
    unfrozen mid-run start like fresh Adam), warmup over 10% of the run then linear
    decay, clipping at norm 1.0, peak learning rate 1e-3 for the head
    (`default_learning_rate`); sparse categorical cross-entropy on logits; metrics
    accuracy and macro-F1 (`val_macro_f1` is a good EarlyStopping monitor).

    The policy's first stage (or `current_stage`) is applied when the model is
    built, so `summary()` shows what trains; the optimizer keeps slots only for
    variables that train in some stage. `current_stage` is saved with the model.

    Args:
        backbone: a Keras model (e.g. a pretrained `pl.backbones.TextEncoder`).
        head: a `pl.heads` head (e.g. `pl.heads.Classifier(num_classes=4)`).
        policy: a `pl.freezing.FreezePolicy`; default
            `FreezeThenUnfreeze(freeze_epochs=1)`.
        current_stage: the policy stage to start in (restored from a saved model).
        groups: optional `{group name: layer-name pattern(s)}`, bottom first, to group
            the backbone's top-level layers yourself (see
            `pl.backbones.layer_groups`); default: the backbone's own groups, or one
            per layer with weights.
        batchnorm: how the backbone's BatchNormalization layers fine-tune.
            `"frozen"`: they never train and always normalize with their moving
            statistics, as Keras's transfer-learning guide advises for pretrained
            weights (a few hundred labels in small batches would otherwise replace
            statistics learned on a large set). `"policy"`: they train with their
            group, in training mode (batch statistics). `"auto"` (default):
            `"policy"` for this library's backbones (their BatchNorm is set up for
            small data), `"frozen"` for any other (`keras.applications`, ...).
            Under `"frozen"`, `BitFit` trains no BatchNorm scale or offset: on a
            ConvNet whose convolutions have no bias, pass `batchnorm="policy"`.
        pairs: the data holds sentence pairs with `segment_ids`
            (`pl.data.text_dataset(texts, tok, pairs=...)`), for a backbone that
            takes them (KerasHub's BERT). Default False: such a backbone gets zeros.

    Examples:
        >>> import pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat", "the dog barks"] * 4, [0, 1, 0] * 4
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(num_classes=2),
        ...                   policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=1))
        >>> ft.compile(learning_rate=1e-3)
        >>> history = ft.fit(pl.data.text_dataset(texts, tok, labels=labels,
        ...                                       sequence_length=8), epochs=2, verbose=0)
        >>> ft.current_stage
        1
    """

    def __init__(self, backbone: keras.Model, head: keras.layers.Layer,
                 policy: FreezePolicy | None = None, current_stage: int | None = None,
                 groups: dict | None = None, batchnorm: str = "auto", pairs: bool = False,
                 **kwargs):
        if not isinstance(backbone, keras.Model):
            raise TypeError(
                "`backbone` must be a keras.Model (e.g. pl.backbones.TextEncoder). "
                f"Received: backbone of type {type(backbone).__name__}"
            )
        if not isinstance(head, keras.layers.Layer):
            raise TypeError(
                "`head` must be a Keras layer (e.g. pl.heads.Classifier(num_classes=4)). "
                f"Received: head of type {type(head).__name__}"
            )
        policy = FreezeThenUnfreeze() if policy is None else policy
        if not isinstance(policy, FreezePolicy):
            raise TypeError(
                "`policy` must be a pl.freezing.FreezePolicy (e.g. FreezeThenUnfreeze()). "
                f"Received: policy of type {type(policy).__name__}"
            )
        # LoRA and adapters change the backbone before the graph is assembled.
        patterns = groups
        network, groups = policy.prepare(backbone, layer_groups(backbone, groups))
        if "head" in groups:
            raise ValueError(
                f"The backbone has a layer group named 'head', the name of the task head's "
                f"group. Rename it. Groups: {list(groups)}"
            )
        # === Functional Model ===
        inputs, call = call_inputs(backbone, pairs=bool(pairs))
        features = network(call)
        outputs = head(features)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.head = head
        self.policy = policy
        # A plain holder, so Keras does not track the layers a second time.
        self._groups = _Groups({**groups, "head": [head]}, network,
                               keras.Model(inputs, features, name="features"))
        self._groups.patterns = patterns
        names = list(self.layer_groups)
        # Fail now, not at the first stage boundary, on groups the model lacks.
        for stage in range(policy.num_stages(names)):
            policy.plan(stage, names)
        self.batchnorm = _resolve_batchnorm(batchnorm, backbone)
        self.pairs = bool(pairs)
        candidates = trainable_candidates(self.layer_groups)
        if self.batchnorm == "frozen":
            candidates -= {id(v) for layers in groups.values() for layer in layers
                           for sub in layer._flatten_layers()
                           if isinstance(sub, keras.layers.BatchNormalization)
                           for v in sub.weights}
        self._groups.candidates = candidates
        if current_stage is not None and not 0 <= current_stage < policy.num_stages(names):
            raise ValueError(
                f"`current_stage` must index one of the policy's {policy.num_stages(names)} "
                f"stages. Received: current_stage={current_stage}"
            )
        self.current_stage = current_stage
        apply_stage(policy, current_stage or 0, self.layer_groups, self.trainable_candidates)

    @property
    def layer_groups(self) -> dict[str, list[keras.layers.Layer]]:
        """The backbone's groups, bottom to top (plus any the policy adds), then
        `"head"`."""
        return dict(self._groups.groups)

    @property
    def trainable_candidates(self) -> frozenset[int]:
        """`id`s of the variables any policy stage may train."""
        return self._groups.candidates

    def _summary_rows(self):
        names = list(self.layer_groups)
        stage = self.current_stage or 0
        groups = ", ".join(name for name in names if name != "head")
        return [
            ("backbone", f"{summary.backbone_line(self.backbone)}; groups {groups}"),
            ("head", f"{summary.describe(self.head)}: "
                     f"{summary.human(summary.count_params(self.head.weights))} params"),
            ("policy", f"{summary.describe(self.policy)}, in stage {stage} of "
                       f"{self.policy.num_stages(names)}\n{self.policy.summary(self)}"),
            *super()._summary_rows(),
        ]

    # === Defaults from the head ===
    def _regression(self) -> bool:
        return getattr(self.head, "task", None) == "regression"

    def default_loss(self):
        if self._regression():
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        if self._regression():
            return [keras.metrics.MeanAbsoluteError(name="mae"),
                    keras.metrics.RootMeanSquaredError(name="rmse")]
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                MacroF1(self.head.num_classes)]

    # === Training ===
    def fit(self, x=None, y=None, epochs=1, callbacks=None, validation_data=None,
            steps_per_epoch=None, initial_epoch=0, cache_features="auto", **kwargs):
        """Keras's `fit`, with the policy applied and, where it pays, cached features.

        Every argument but `cache_features` is `keras.Model.fit`'s.

        Args:
            cache_features: `"auto"` (default): when every epoch of this call trains
                the head alone and the backbone has no random layer (dropout,
                augmentation), the backbone's features are computed once and the
                head is trained on them; same results, a fraction of the time. It
                assumes `x` yields the same inputs every epoch: pass `False` if your
                dataset augments. `True` insists (an error says why it cannot).
        """
        if y is not None:
            raise ValueError(
                "`y` is not used: FineTuner.fit takes a tf.data.Dataset of (inputs, "
                "labels) as `x`; build one with pl.data.text_dataset(texts, tokenizer, "
                "labels=...) or pl.data.image_dataset(images, labels).")
        self._check_data("x", x, steps_per_epoch, "steps_per_epoch")
        if validation_data is not None:
            self._check_data("validation_data", validation_data,
                               kwargs.get("validation_steps"), "validation_steps")
        self._require_compiled()
        # Build the optimizer on every variable that some stage trains, so that
        # groups unfrozen later are known to it (Keras refuses unknown variables).
        # Slots are variables: create them under the model's distribution strategy.
        if not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimizer_variables())
        policy_callback = PolicyCallback(self.policy, self.layer_groups,
                                         self.trainable_candidates)
        policy_callback.set_model(self)

        def apply_policy(epoch: int) -> None:  # once a resumed state is loaded
            policy_callback.apply(epoch if self.policy.unit == "epoch"
                                  else int(self.optimizer.iterations))

        callbacks = [policy_callback, *(callbacks or [])]
        kwargs.update(epochs=epochs, callbacks=callbacks, steps_per_epoch=steps_per_epoch,
                      initial_epoch=initial_epoch, on_start=apply_policy)
        kwargs.setdefault("shuffle", False)  # datasets shuffle themselves
        if not self._use_feature_cache(cache_features, epochs, initial_epoch):
            return self._fit_keras(x, validation_data=validation_data, **kwargs)
        network = self._groups.features
        x = feature_cache.cache_features(network, x, self._head_input)
        if validation_data is not None:
            validation_data = feature_cache.cache_features(network, validation_data,
                                                           self._head_input)
        self._set_feature_mode(True)
        try:
            return self._fit_keras(x, validation_data=validation_data, **kwargs)
        finally:
            self._set_feature_mode(False)

    def optimizer_variables(self) -> list:
        """Every variable that trains in some stage of the policy."""
        return variables_ever_trained(self.policy, self.layer_groups, self.trainable_candidates)

    # === Feature caching ===
    def _use_feature_cache(self, cache_features, epochs: int, initial_epoch: int) -> bool:
        if cache_features not in ("auto", True, False):
            raise ValueError(
                "`cache_features` must be 'auto', True or False. "
                f"Received: cache_features={cache_features!r}"
            )
        if cache_features is False:
            return False
        names = list(self.layer_groups)
        if self.policy.unit == "step":  # which steps this call spans is not known here
            stages = set(range(self.policy.num_stages(names)))
        else:
            stages = {self.policy.stage_index(e, names) for e in range(initial_epoch, epochs)}
        training = sorted({g for stage in stages
                           for g, plan in self.policy.plan(stage, names).items()
                           if plan.trains and g != "head"})
        random = feature_cache.random_layers(self._groups.network)
        if cache_features is True and (training or random):
            reason = (f"groups {training} train in these epochs" if training
                      else f"the backbone has random layers {random}")
            raise ValueError(
                f"`cache_features=True` needs a frozen, deterministic backbone, but {reason}."
                " Use cache_features='auto' or False."
            )
        return not training and not random

    def _head_input(self, outputs):
        """What the head reads from the backbone's outputs (only that is cached)."""
        feature = getattr(self.head, "feature", None)
        if isinstance(outputs, dict) and feature in outputs:
            return {feature: outputs[feature]}
        return outputs

    def _set_feature_mode(self, on: bool) -> None:
        self._groups.features_cached = on
        # Steps traced in one mode must not run in the other.
        self.train_function = self.test_function = self.predict_function = None

    @property
    def input_spec(self):
        return None if self._groups_ready() and self._groups.features_cached \
            else super().input_spec

    @input_spec.setter
    def input_spec(self, value):
        keras.Model.input_spec.fset(self, value)

    def _groups_ready(self) -> bool:
        return isinstance(self.__dict__.get("_groups"), _Groups)

    def call(self, inputs, training=None, mask=None, **kwargs):
        if self._groups_ready() and self._groups.features_cached:
            return self.head(inputs, training=training)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def _check_data(self, name: str, dataset, steps: int | None, steps_name: str) -> None:
        """Rejects, before any step runs, inputs the model does not take and labels
        outside `[0, num_classes)` (in the `steps` batches used of an endless dataset)."""
        dataset_length(name, dataset)
        dataset = bounded(name, dataset, steps, steps_name)
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ValueError(
                f"`{name}` must yield (inputs, labels) pairs. Received element spec: {spec}"
            )
        given, wanted = spec[0], self.input
        if isinstance(given, dict) and isinstance(wanted, dict) and set(given) != set(wanted):
            hint = ""
            if "segment_ids" in set(given) - set(wanted):
                hint = " Build the FineTuner with pairs=True for sentence pairs."
            elif "segment_ids" in set(wanted) - set(given):
                hint = (" Pass pairs=... to pl.data.text_dataset, or build the FineTuner "
                        "without pairs=True.")
            raise ValueError(
                f"`{name}` yields inputs {sorted(given)}, but the model takes "
                f"{sorted(wanted)}.{hint}"
            )
        num_classes = getattr(self.head, "num_classes", None)
        if num_classes is None:
            return
        if getattr(spec[1], "dtype", None) is not None and spec[1].dtype.is_floating:
            raise ValueError(
                f"`{name}` has float labels ({spec[1].dtype.name}), but the head "
                f"{type(self.head).__name__} classifies: pass integer class ids, or use "
                "pl.heads.Regressor for real-valued targets."
            )
        largest = dataset.map(lambda *batch: keras.ops.max(batch[1])).reduce(
            np.int64(-1), lambda a, b: keras.ops.maximum(a, keras.ops.cast(b, "int64"))
        )
        if int(largest) >= num_classes:
            raise ValueError(
                f"`{name}` holds label {int(largest)}, but the head has num_classes="
                f"{num_classes}. Build the head with num_classes >= {int(largest) + 1}."
            )

    # === Config ===
    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.head),
            "policy": keras.saving.serialize_keras_object(self.policy),
            "current_stage": self.current_stage,
            "groups": self._groups.patterns,
            "batchnorm": self.batchnorm,
            "pairs": self.pairs,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "head", "policy"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _resolve_batchnorm(batchnorm: str, backbone: keras.Model) -> str:
    validation.one_of("batchnorm", batchnorm, ("auto", "frozen", "policy"))
    if batchnorm != "auto":
        return batchnorm
    # The library's own backbones, whose BatchNorm is set up for small data.
    ours = (backbones.ConvNet, backbones.VisionEncoder, backbones.TextEncoder)
    return "policy" if isinstance(backbone, ours) else "frozen"


class _Groups:
    """Holds the FineTuner's layer groups, and what the head is trained on, outside
    Keras's attribute tracking."""

    def __init__(self, groups, network, features):
        self.groups = groups
        self.network = network  # the backbone as called (with adapters, if any)
        self.features = features  # the FineTuner's inputs -> what the head reads
        self.candidates = frozenset()
        self.features_cached = False
