"""FineTuner: backbone + head + freezing policy (+ transform), trained on labels."""

from __future__ import annotations

import keras
import tensorflow as tf

from pretrainlib import formatting, validation
from pretrainlib.backbones.layer_groups import layer_groups
from pretrainlib.backbones.outputs import call_inputs, check_causal_lm
from pretrainlib.data.image_preprocessor import check_pixels
from pretrainlib.freezing import adapter_file, trainable
from pretrainlib.freezing.builtins import FreezeThenUnfreeze, FullFineTune
from pretrainlib.freezing.callback import (
    PolicyCallback,
    apply_stage,
    stages_training_nothing,
    variables_ever_trained,
)
from pretrainlib.freezing.peft import Transform
from pretrainlib.freezing.policy import FreezePolicy
from pretrainlib.heads.logits import LogitsDefaults
from pretrainlib.heads.multi import Heads
from pretrainlib.protocol import DeclaresLoss
from pretrainlib.semi.fitting import LearnsFromPool
from pretrainlib.semi.methods import SemiSupervised
from pretrainlib.training import feature_cache
from pretrainlib.training.core import TrainingCore
from pretrainlib.training.inputs import check_labeled, check_shapes
from pretrainlib.training.lora_saving import keep_lora_weights


@keras.saving.register_keras_serializable(package="pretrainlib")
class FineTuner(LearnsFromPool, TrainingCore, keras.Model):
    """A backbone with a task head, fine-tuned under a freezing policy; a Keras model.

    `fit`, `evaluate` and `predict` take what a Keras model takes: a
    `tf.data.Dataset` of `(inputs, labels)` (e.g. `pl.data.text_dataset(texts, tok,
    labels=...)`), arrays or dicts of arrays with `y=`, or raw inputs when a
    `preprocessor` is given (`ft.fit(texts, labels)`, `ft.predict(["some text"])`).
    The `policy` is applied through a callback that composes with your own; a
    later `fit` continues its stages where the last stopped. The backbone trains in
    place, as a layer of a Keras model does: `pl.backbones.clone(backbone)` keeps
    yours. Only what you left trainable trains: freeze a layer (or the backbone)
    before building the FineTuner and no policy stage unfreezes it.

    Defaults come from the head: for `pl.heads.Classifier`, sparse categorical
    cross-entropy on logits with accuracy and macro-F1 (`val_macro_f1` is a good
    EarlyStopping monitor); `compile()` gives AdamW with warmup and decay, clipping
    at norm 1.0 and peak rate 1e-3 for the head.

    Args:
        backbone: a Keras model (e.g. a pretrained `pl.backbones.TextEncoder`).
        head: a `pl.heads` head (e.g. `pl.heads.Classifier(num_classes=4)`;
            `pl.heads.CausalLMHead()` fine-tunes a causal backbone to write, on rows
            of tokens such as `pl.data.prompt_dataset`'s), or a
            dict of them by name for several tasks on one backbone (see
            `pl.heads.Heads`: labels as a dict by the same names, a loss and a report
            per head).
        policy: when each layer group trains: a `pl.freezing.FreezePolicy`; default
            `FreezeThenUnfreeze(freeze_epochs=1)`, or `FullFineTune()` with
            `adapters` or a head that owns no weights (`pl.heads.CausalLMHead`). A
            transform given here means `adapters=` it with `FullFineTune()`. A
            policy with a stage in which nothing would train is refused.
        adapters: what can train, a `pl.freezing.Transform`: `LoRA(8)`,
            `Adapters(16)` or `BitFit()`; composes with any policy.
        preprocessor: raw inputs to the backbone's inputs (e.g.
            `pl.text.TextPreprocessor(tokenizer, sequence_length=128)`); saved with
            the model.
        groups: optional `{group name: layer-name pattern(s)}`, bottom first (see
            `pl.backbones.layer_groups`); default: the backbone's own groups.
        batchnorm: `"frozen"`: the backbone's BatchNormalization layers never train
            and normalize with their moving statistics, as Keras's transfer-learning
            guide advises for pretrained weights; `"policy"`: they train with their
            group; `"auto"` (default): `"policy"` for this library's backbones
            (their BatchNorm is set up for small data), `"frozen"` for others.
        pairs: the data holds sentence pairs with `segment_ids`
            (`pl.data.text_dataset(texts, tok, pairs=...)`), for a backbone that
            takes them (KerasHub's BERT). Default False: such a backbone gets zeros.
        current_stage: the policy stage applied (restored from a saved model).
        epochs_trained: epochs trained so far; a later `fit` continues from here.
        frozen_variables: paths of the backbone weights you froze (default: read
            off the layers; restored from a saved model).
        class_names: names of the classes, in id order; default: those of the
            first dataset trained on that has them (`pl.data.text_dataset` with
            string labels gives them); with several heads, a dict of them by head.
            Saved with the model; the `Evaluator` uses them.
        semi_supervised: how `fit(..., unlabeled=...)` learns from unlabeled
            examples: `pl.semi.PseudoLabel()` (the default) or
            `pl.semi.Consistency()`.

    Examples:
        >>> import pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat", "the dog barks"] * 4, [0, 1, 0] * 4
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(num_classes=2),
        ...                   policy=pl.freezing.FreezeThenUnfreeze(freeze_epochs=1),
        ...                   preprocessor=pl.text.TextPreprocessor(tok, sequence_length=8))
        >>> ft.compile("adam", learning_rate=1e-3)
        >>> history = ft.fit(texts, labels, epochs=1, verbose=0)
        >>> history = ft.fit(texts, labels, epochs=1, verbose=0)  # goes on to stage 1
        >>> ft.current_stage, ft.predict(["a small cat"], verbose=0).shape
        (1, (1, 2))
    """

    fit_on_cached_features = False  # whether the last `fit` trained on cached features
    _cache = "auto"  # this `fit`'s `cache_features`

    def __init__(self, backbone: keras.Model, head: keras.layers.Layer,
                 policy: FreezePolicy | Transform | None = None,
                 adapters: Transform | None = None, preprocessor=None,
                 groups: dict | None = None, batchnorm: str = "auto", pairs: bool = False,
                 current_stage: int | None = None, epochs_trained: int = 0,
                 frozen_variables: list | None = None, class_names: list | None = None,
                 semi_supervised: SemiSupervised | None = None, **kwargs):
        validation.instance_of("backbone", backbone, keras.Model,
                               "a keras.Model (e.g. pl.backbones.TextEncoder)")
        if isinstance(head, dict):  # several tasks: one output per named head
            head = Heads(head)
        validation.instance_of("head", head, keras.layers.Layer,
                               "a Keras layer (e.g. pl.heads.Classifier(num_classes=4)) "
                               "or a dict of them")
        validation.instance_of("policy", policy, (FreezePolicy, Transform, type(None)),
                               "a pl.freezing.FreezePolicy (e.g. FreezeThenUnfreeze())")
        validation.instance_of("adapters", adapters, (Transform, type(None)),
                               "a pl.freezing.Transform (e.g. LoRA(8))")
        validation.instance_of("semi_supervised", semi_supervised,
                               (SemiSupervised, type(None)),
                               "a pl.semi method (e.g. pl.semi.PseudoLabel())")
        if isinstance(policy, Transform):  # shorthand: the transform, trained throughout
            policy, adapters = FullFineTune(), policy
        if preprocessor is not None:
            preprocessor.check_backbone(backbone)
        adapted = trainable.adapt(backbone, layer_groups(backbone, groups), adapters,
                                  frozen_variables)
        if "head" in adapted.groups:
            raise ValueError(
                f"The backbone has a layer group named 'head', the name of the task head's "
                f"group. Rename it. Groups: {list(adapted.groups)}")
        if hasattr(head, "bind"):  # reads through the backbone's token embedding
            check_causal_lm(backbone, type(head).__name__)
            head.bind(backbone.token_embedding)
        # === Functional Model ===
        inputs, call = call_inputs(backbone, pairs=bool(pairs))
        features = adapted.network(call)
        super().__init__(inputs=inputs, outputs=head(features), **kwargs)
        if policy is None:  # a head-only stage would train nothing for a weightless head
            policy = (FullFineTune() if adapters is not None or not head.weights
                      else FreezeThenUnfreeze())
        self.backbone, self.head, self.policy, self.adapters = backbone, head, policy, adapters
        keep_lora_weights(self)  # saved unmerged: a reloaded LoRA model trains on
        self.preprocessor = preprocessor
        self.semi_supervised = semi_supervised
        self.batchnorm = trainable.resolve_batchnorm(batchnorm, backbone)
        self.pairs = bool(pairs)
        self.epochs_trained = validation.non_negative_int("epochs_trained", epochs_trained)
        candidates = trainable.candidates(adapted, head, adapters, self.batchnorm == "frozen")
        # A plain holder, so Keras does not track the layers a second time.
        self._parts = trainable.Parts({**adapted.groups, "head": [head]}, adapted.network,
                                      keras.Model(inputs, features, name="features"),
                                      candidates, adapted.frozen, groups)
        policy.check(list(self.layer_groups), current_stage)  # before the first stage
        self.current_stage = current_stage
        self.class_names = None
        if isinstance(class_names, dict):  # several heads: {head: names}
            self.class_names = {name: list(names) for name, names in class_names.items()}
        elif class_names is not None:
            self._adopt_class_names("class_names", list(class_names))
        idle = stages_training_nothing(policy, self.layer_groups, candidates)
        if idle:
            raise ValueError(
                f"{policy!r} trains nothing in stage {idle[0]}: the groups it trains "
                "there have no weights that may train"
                + (f" ({type(head).__name__} owns none: it reuses the backbone's token "
                   "embedding)" if not head.weights else "")
                + ". Pick a policy that trains the backbone in every stage, e.g. "
                "FullFineTune(), LayerwiseLRDecay(...), or adapters=LoRA(8).")
        apply_stage(policy, current_stage or 0, self.layer_groups, candidates)

    @property
    def layer_groups(self) -> dict[str, list[keras.layers.Layer]]:
        """The backbone's groups, bottom to top (with any adapter layers), then
        `"head"`."""
        return dict(self._parts.groups)

    @property
    def trainable_candidates(self) -> frozenset[int]:
        """`id`s of the variables some policy stage may train."""
        return self._parts.candidates

    @property
    def task_part(self) -> DeclaresLoss:
        """The head, or for a plain Keras layer, classification on its logits."""
        if isinstance(self.head, DeclaresLoss):
            return self.head
        return LogitsDefaults(self.output_shape[-1])

    def optimizer_variables(self) -> list:
        """Every variable that trains in some stage of the policy."""
        return variables_ever_trained(self.policy, self.layer_groups, self.trainable_candidates)

    def _summary_rows(self):
        return formatting.fine_tuner_rows(self) + super()._summary_rows()

    # === Training ===
    def fit(self, x=None, y=None, *args, unlabeled=None, cache_features="auto", **kwargs):
        """`keras.Model.fit` (see `TrainingCore.fit`), with the policy applied and,
        where it pays, cached features.

        Args:
            unlabeled: unlabeled examples to learn from as well, by the FineTuner's
                `semi_supervised` method (default `pl.semi.PseudoLabel()`): raw
                texts (with a text preprocessor) or a dict of token-id arrays;
                images (uint8 0-255 or floats in [0, 1]); or a batched
                `tf.data.Dataset` of model inputs without labels (read in its own
                order). Each step reads `ratio` unlabeled examples per labeled one,
                in an order fixed by a seed per epoch of the pool (recorded by a
                checkpoint, so a resumed run reads the same ones). Never pass test
                examples: pseudo-labels are training signal.
            cache_features: `"auto"` (default): when every epoch of this call trains
                the head alone, the backbone has no random layer (dropout) and the
                dataset draws no random numbers (augmentation), the backbone's
                features are computed once and the head is trained on them; same
                results, a fraction of the time. `True` insists (an error says why
                it cannot); `False` never caches. `fit_on_cached_features` says
                whether the last call did.
        """
        validation.one_of("cache_features", cache_features, ("auto", True, False))
        self._cache = cache_features
        if unlabeled is not None and self._rows_transform is not None:
            raise ValueError(
                f"`unlabeled` is for classification heads; {type(self.head).__name__} "
                "learns from rows of text directly: pass them as `x`.")
        if unlabeled is None:
            return super().fit(x, y, *args, **kwargs)
        with self._reading_pool(unlabeled, cache_features):
            return super().fit(x, y, *args, **kwargs)

    # === Rows for a head that makes its own targets (next tokens) ===
    @property
    def _rows_transform(self):
        """The head's `transform` from rows of tokens to (inputs, targets, weights),
        for a head that has one (`pl.heads.CausalLMHead`); else None."""
        return getattr(self.head, "transform", None)

    @property
    def _reads_one_stream(self) -> bool:
        # A head's transform runs on the run's one stream, as an objective's does.
        return self._rows_transform is not None or super()._reads_one_stream

    def _stream_view(self, stream, first_batch, step=1):
        stream = super()._stream_view(stream, first_batch, step)
        return self._as_targets(stream)

    def _evaluation_view(self, dataset):
        return self._as_targets(super()._evaluation_view(dataset))

    def _as_targets(self, dataset):
        if dataset is None or self._rows_transform is None:
            return dataset
        transform = self._rows_transform  # labels, if any, are not read
        return dataset.map(lambda rows, *labels: transform(rows),
                           num_parallel_calls=tf.data.AUTOTUNE)

    def _check_rows(self, name, dataset):
        """Rows of tokens, checked before the head's transform reads them."""
        spec = dataset.element_spec
        rows = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(rows, dict) or not {"token_ids", "padding_mask"} <= set(rows):
            given = sorted(rows) if isinstance(rows, dict) else rows
            raise ValueError(
                f"`{name}` must yield rows of tokens for {type(self.head).__name__}: dicts "
                "with 'token_ids' and 'padding_mask' (pl.data.prompt_dataset(prompts, "
                "targets, tok) or pl.data.text_dataset(texts, tok, pack=True)). "
                f"Received: {given}")
        return self._as_targets(dataset)

    def _check_data(self, name, dataset, steps, steps_name):
        if self._rows_transform is not None:
            dataset = self._check_rows(name, dataset)
        if isinstance(self.head, Heads):
            self._check_task_labels(name, dataset, steps, steps_name)
        else:
            check_labeled(name, dataset, steps, steps_name, self.input,
                          getattr(self.task_part, "num_classes", None))
        check_shapes(name, dataset.element_spec[0], self.backbone)
        check_pixels(name, dataset, self.backbone)
        names = getattr(dataset, "class_names", None)
        if isinstance(self.head, Heads):  # {head: names}, kept as the first data gives
            if isinstance(names, dict) and self.class_names is None:
                self.class_names = dict(names)
        elif names is not None:
            self._adopt_class_names(name, list(names))

    def _check_task_labels(self, name, dataset, steps, steps_name):
        """Each head's labels, by name, checked as a single head's are."""
        spec = dataset.element_spec
        labels = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
        heads = self.head.heads
        if not isinstance(labels, dict) or set(labels) != set(heads):
            given = sorted(labels) if isinstance(labels, dict) else type(labels).__name__
            raise ValueError(
                f"`{name}` must yield labels as a dict with one entry per head "
                f"{sorted(heads)}; it yields {given}. Build it with labels={{"
                + ", ".join(f"'{h}': ..." for h in heads) + "}.")
        for task, head in heads.items():
            one = dataset.map(lambda x, y, *w, task=task: (x, y[task]))
            check_labeled(f"{name}['{task}']", one, steps, steps_name, self.input,
                          getattr(self.head.task(task), "num_classes", None))

    def _adopt_class_names(self, name, names):
        """Keeps the class names `name` gives, after checking them against the head
        and against the names the model already has."""
        if self.class_names is not None:
            if names != self.class_names:
                raise ValueError(
                    f"`{name}` names its classes {names[:10]}, but this model's classes are "
                    f"{self.class_names[:10]}: build the data with "
                    f"label_vocabulary=ft.class_names so that the ids mean the same.")
            return
        num_classes = getattr(self.task_part, "num_classes", None)
        if num_classes is not None and len(names) > num_classes:
            raise ValueError(
                f"`{name}` names {len(names)} classes, more than the head's "
                f"num_classes={num_classes}. Build the head with "
                f"pl.heads.Classifier(num_classes={len(names)}).")
        self.class_names = names

    def _fit_run(self, run, **kwargs):
        policy = PolicyCallback(self.policy, self.layer_groups, self.trainable_candidates,
                                epoch_offset=run.epoch_offset)
        policy.set_model(self)
        self._policy_callback = policy
        run.callbacks.insert(0, policy)
        if self._unlabeled is not None:
            return self._fit_with_pool(run, **kwargs)
        reason = feature_cache.reason_not_to_cache(
            self._cache, self.policy, list(self.layer_groups), run.absolute_epochs(),
            self._parts.network, (("x", run.x), ("validation_data", kwargs["validation_data"])))
        self.fit_on_cached_features = reason is None
        if reason is not None:
            return super()._fit_run(run, **kwargs)
        return feature_cache.fit_head(self, run, self._parts.features, **kwargs)

    def _begin_run(self, epoch: int) -> None:
        self._policy_callback.apply(epoch if self.policy.unit == "epoch"
                                    else int(self.optimizer.iterations.numpy()))

    # === Adapter files ===
    def save_adapters(self, path) -> str:
        """Writes only what this model trains (a transform's weights such as LoRA's,
        and the head) to `path`, an HDF5 file a few percent of the model's size;
        returns the path.

        `load_adapters` reads it into a FineTuner built the same way on the same base,
        from any source: `pl.hub.load_backbone` of a `.keras` file or a KerasHub
        preset, an int8-quantized copy (`pl.compress.quantize`), or the backbone in
        memory.

        Examples:
            >>> import tempfile, numpy as np, pretrainlib as pl
            >>> texts, labels = ["a small dog", "a large cat"] * 4, [0, 1] * 4
            >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=30)
            >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1,
            ...                                    hidden_dim=16, max_sequence_length=8)
            >>> base = pl.backbones.clone(encoder)  # the base as it was
            >>> def fine_tuner(backbone):
            ...     return pl.FineTuner(backbone, pl.heads.Classifier(2),
            ...                         adapters=pl.freezing.LoRA(4),
            ...                         preprocessor=pl.text.TextPreprocessor(tok, 8))
            >>> ft = fine_tuner(encoder)
            >>> ft.compile(learning_rate=1e-2)
            >>> history = ft.fit(texts, labels, epochs=2, verbose=0)
            >>> path = ft.save_adapters(tempfile.mkdtemp() + "/task.adapters.h5")
            >>> again = fine_tuner(base)
            >>> again.load_adapters(path)
            >>> bool(np.allclose(again.predict(texts, verbose=0), ft.predict(texts, verbose=0),
            ...                  atol=1e-5))
            True
        """
        return adapter_file.save(self, path)

    def load_adapters(self, path) -> None:
        """Reads a file `save_adapters` wrote. The FineTuner must have the same
        `adapters` and head, and a base of the same shapes: otherwise an error names
        what differs (the layer, for a base of other shapes) and no weight changes. A
        base whose weights differ from the one trained on gives a warning."""
        adapter_file.load(self, path)

    # === Config ===
    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "backbone": serialize(self.backbone), "head": serialize(self.head),
            "policy": serialize(self.policy),
            "adapters": None if self.adapters is None else serialize(self.adapters),
            "preprocessor": None if self.preprocessor is None else serialize(self.preprocessor),
            "groups": self._parts.patterns, "batchnorm": self.batchnorm, "pairs": self.pairs,
            "current_stage": self.current_stage, "epochs_trained": int(self.epochs_trained),
            "frozen_variables": list(self._parts.frozen), "class_names": self.class_names,
            "semi_supervised": (None if self.semi_supervised is None
                                else serialize(self.semi_supervised)),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "head", "policy", "adapters", "preprocessor",
                    "semi_supervised"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

