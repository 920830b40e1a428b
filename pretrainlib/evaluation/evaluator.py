"""Evaluator: stream a model's outputs over a dataset into a Report."""

from __future__ import annotations

import copy
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from pretrainlib import validation
from pretrainlib.evaluation import metrics as metric_fns
from pretrainlib.evaluation import probes, text_metrics
from pretrainlib.evaluation.report import Report, pyplot


class Evaluator:
    """Evaluates any Keras model on a `tf.data.Dataset`, exactly, with uncertainty.

    Metrics are chosen by name and must belong to one task:

    - classification (outputs `[batch, classes]` logits or probabilities, labels
      `[batch]`): `accuracy`, `top_<k>_accuracy`, `<macro|micro|weighted>_<precision|
      recall|f1>`, `roc_auc` (two classes);
    - regression (outputs and targets `[batch]` or `[batch, outputs]`): `mae`,
      `rmse`, `r2`;
    - language modeling (logits `[batch, tokens, vocab]`, labels `[batch, tokens]`,
      optional per-token weights as the dataset's third element): `cross_entropy`,
      `perplexity`, `token_accuracy`;
    - reconstruction (outputs shaped like the targets, optional per-position
      weights): `mse`, `psnr` (pixel range [0, 1]).

    The dataset yields `(inputs, targets)` or `(inputs, targets, weights)` (for a
    Pretrainer, map its objective's `transform` over the raw data first). The model
    is run batch by batch; a few numbers per example are kept, and every metric is
    computed from all of them at once, so values are exact (not averages of batch
    values). With `bootstrap=B`, each metric also gets a percentile confidence
    interval from `B` resamples of the test examples.

    Args:
        metrics: metric names (see above), or one name.
        class_names: names of the classes for per-class tables and plots (for a
            model with several outputs, a dict of them by output name); default:
            the model's `class_names` (a `FineTuner` trained on named labels keeps
            them), else the dataset's.
        bootstrap: number of bootstrap resamples (0: no intervals).
        confidence: the intervals' coverage, in (0, 1).
        seed: seed of the bootstrap resampling.
        from_logits: whether classifiers output logits (as this library's heads do)
            rather than probabilities; ensembles and mistakes' confidences use it.

    Examples:
        >>> import numpy as np, keras, tensorflow as tf, pretrainlib as pl
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> ds = tf.data.Dataset.from_tensor_slices(
        ...     (np.random.rand(10, 4).astype("float32"), np.arange(10) % 3)).batch(4)
        >>> evaluator = pl.Evaluator(metrics=["accuracy", "macro_f1"], bootstrap=200)
        >>> report = evaluator.evaluate(model, ds)
        >>> sorted(report.metrics), report.num_examples, sorted(report.intervals)
        (['accuracy', 'macro_f1'], 10, ['accuracy', 'macro_f1'])
    """

    def __init__(self, metrics: Sequence[str] | str = ("accuracy", "macro_f1"),
                 class_names: Sequence[str] | None = None, bootstrap: int = 0,
                 confidence: float = 0.95, seed: int = 0, from_logits: bool = True):
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not metrics:
            raise ValueError("`metrics` is empty; name at least one, e.g. ['accuracy'].")
        resolved = {name: metric_fns.resolve(name) for name in metrics}
        tasks = {task for task, _ in resolved.values()}
        if tasks == {"generation", "language_modeling"}:
            # The references' perplexity beside the scores of generated text: both come
            # from `evaluate_generation`, which has the model and the prompts.
            tasks = {"generation"}
        if len(tasks) > 1:
            raise ValueError(
                "`metrics` mixes tasks: " + ", ".join(
                    f"{name} ({task})" for name, (task, _) in resolved.items())
                + ". Evaluate each task's metrics with its own Evaluator."
            )
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
            raise ValueError(
                f"`bootstrap` must be a non-negative int. Received: bootstrap={bootstrap!r}")
        if not 0 < confidence < 1:
            raise ValueError(
                f"`confidence` must lie strictly between 0 and 1. Received: {confidence!r}")
        self.metrics = metrics
        self.task = tasks.pop()
        self._functions = {name: fn for name, (_, fn) in resolved.items()}
        self.class_names = (dict(class_names) if isinstance(class_names, dict)
                            else tuple(class_names) if class_names else None)
        self.bootstrap, self.confidence, self.seed = bootstrap, confidence, seed
        self.from_logits = from_logits

    def evaluate(self, model, dataset: tf.data.Dataset) -> Report | dict[str, Report]:
        """Runs `model` over `dataset` and returns a `Report`.

        `model` may be a list of models: the ensemble's prediction is the average
        of theirs (of the class probabilities, for classification). A model with
        several named outputs (a FineTuner with a dict of heads), on a dataset whose
        targets are a dict by the same names, gives `{name: Report}`: each output
        scored against its targets, with its own class names (`class_names` may be
        a dict by output name too).
        """
        if self.task == "generation":
            raise ValueError(
                f"{', '.join(self.metrics)} score generated texts: call "
                "`evaluate_texts(references=..., predictions=...)`. For perplexity, "
                "evaluate the model with Evaluator(metrics=['perplexity']).")
        outputs = _output_names(model)
        if outputs is not None:
            return self._evaluate_each_output(model, dataset, outputs)
        predict = _predictor(model, self.task, self.from_logits)
        parts, num_classes = [], 0
        for batch in _batches(dataset):
            outputs = predict(batch[0])
            targets = np.asarray(batch[1])
            weights = np.asarray(batch[2], "float64") if len(batch) == 3 else None
            parts.append(self._records(outputs, targets, weights))
            if self.task == "classification":
                num_classes = max(num_classes, outputs.shape[-1], int(targets.max()) + 1)
        if not parts:
            raise ValueError("`dataset` is empty; it yielded no batch.")
        names = (self.class_names or getattr(model, "class_names", None)
                 or getattr(dataset, "class_names", None))
        return self._report(parts, num_classes, names)

    def _report(self, parts: list, num_classes: int, names, functions=None) -> Report:
        """The Report of per-batch `parts` of records (scored by `functions`, default
        this Evaluator's: `{name: fn(records, num_classes)}`)."""
        functions = functions or self._functions
        records = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        if "roc_auc" in self.metrics and "score" not in records:
            raise ValueError(
                f"`roc_auc` is defined here for two classes; the model outputs {num_classes}.")
        values = {name: fn(records, num_classes) for name, fn in functions.items()}
        num_examples = len(next(iter(records.values())))
        confusion = (metric_fns.confusion_matrix(records["label"], records["predicted"],
                                                 num_classes)
                     if self.task == "classification" else None)
        return Report(values, confusion, tuple(names) if names else None, num_examples,
                      intervals=self._intervals(records, num_classes, num_examples, functions),
                      task=self.task, confidence=self.confidence)

    # === Generated text ===
    def evaluate_texts(self, references, predictions, lowercase: bool = False,
                       smooth: str = "exp", smooth_value: float | None = None) -> Report:
        """Scores generated `predictions` against `references` with the generation
        metrics: `bleu` (corpus BLEU, 0-100, as SacreBLEU: `13a` tokens, n-grams up
        to 4, the brevity penalty against the closest reference), `sentence_bleu`
        (the mean of per-sentence BLEU with effective order, as SacreBLEU's
        `sentence_bleu`) and `rouge_l` (the mean longest-common-subsequence F-measure,
        0-1, as `rouge_score`). With `bootstrap=B`, each gets an interval from `B`
        resamples of the examples (corpus BLEU recomputed from each resample's counts).

        Args:
            references: one reference text per prediction, or a list of several per
                prediction (BLEU clips by and ROUGE-L takes the best of them).
            predictions: the generated texts.
            lowercase: compare BLEU tokens lower-cased.
            smooth: BLEU smoothing: `"exp"` (SacreBLEU's default), `"floor"`,
                `"add-k"` or `"none"`.
            smooth_value: the floor's epsilon (default 0.1) or add-k's k (default 1).

        Examples:
            >>> import pretrainlib as pl
            >>> report = pl.Evaluator(metrics=["bleu", "rouge_l"]).evaluate_texts(
            ...     references=["a small dog barks", "the cat sleeps"],
            ...     predictions=["a small dog barks", "the cat is asleep"])
            >>> round(report.metrics["rouge_l"], 3)
            0.786
        """
        self._need_generation("evaluate_texts")
        likelihood = [name for name in self.metrics if name not in metric_fns.GENERATION]
        if likelihood:
            raise ValueError(
                f"{', '.join(likelihood)} need the model that wrote the texts: call "
                "`evaluate_generation(generator, prompts, references)`, or leave them out of "
                "`metrics`.")
        return self._text_report(references, predictions, lowercase, smooth, smooth_value)

    def evaluate_generation(self, generator, prompts, references, lowercase: bool = False,
                            smooth: str = "exp", smooth_value: float | None = None,
                            **generate) -> Report:
        """Generates a text for every prompt with `generator` (a
        `pl.generation.Generator`) and scores it against its references with the
        generation metrics (as `evaluate_texts`), and the references' `perplexity`,
        `cross_entropy` or `token_accuracy` given their prompts, if asked for (the
        first reference of each prompt, scored token by token after the prompt by
        `Generator.log_likelihood`). The generated texts are `report.predictions`.

        Args:
            generator: a `pl.generation.Generator`.
            prompts: the prompts, one per reference.
            references: as in `evaluate_texts`.
            lowercase: BLEU's option, as in `evaluate_texts`.
            smooth: BLEU's smoothing, as in `evaluate_texts`.
            smooth_value: its value, as in `evaluate_texts`.
            **generate: `Generator.generate`'s options (`max_new_tokens`, `sampler`,
                `seed`, `batch_size`, ...).

        Examples:
            >>> import pretrainlib as pl
            >>> tok = pl.text.WordPieceTokenizer.train(["dog : a pet", "oak : a tree"] * 4, 40)
            >>> decoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=8,
            ...                                    max_sequence_length=16, causal=True)
            >>> evaluator = pl.Evaluator(metrics=["bleu", "rouge_l", "perplexity"])
            >>> report = evaluator.evaluate_generation(
            ...     pl.generation.Generator(decoder, tok), ["dog :", "oak :"],
            ...     ["a pet", "a tree"], max_new_tokens=4)
            >>> sorted(report.metrics), len(report.predictions)
            (['bleu', 'perplexity', 'rouge_l'], 2)
        """
        self._need_generation("evaluate_generation")
        prompts = validation.string_list("prompts", prompts)
        references = _references(references, len(prompts))
        _check_bleu_options(smooth, smooth_value)
        likelihood = {name: fn for name, fn in self._functions.items()
                      if name not in metric_fns.GENERATION}
        records = {}
        if likelihood:  # before generating: a reference too long fails fast
            scores = generator.log_likelihood(prompts, [refs[0] for refs in references],
                                              batch_size=generate.get("batch_size") or 32)
            records = {"cross_entropy": -scores["log_likelihood"], "tokens": scores["tokens"],
                       "correct": scores["correct"]}
        predictions = generator.generate(prompts, **generate)
        report = self._text_report(references, predictions, lowercase, smooth, smooth_value,
                                   records, likelihood)
        report.predictions = predictions
        return report

    def _need_generation(self, method: str) -> None:
        if self.task != "generation":
            raise ValueError(
                f"`{method}` scores generated texts: the Evaluator's metrics must be "
                f"{', '.join(metric_fns.GENERATION)} (and perplexity). Received: "
                f"{list(self.metrics)}")

    def _text_report(self, references, predictions, lowercase, smooth, smooth_value,
                     records=None, likelihood=None) -> Report:
        _check_bleu_options(smooth, smooth_value)
        predictions = validation.string_list("predictions", predictions)
        references = _references(references, len(predictions))
        records = {**(records or {}),
                   **text_metrics.bleu_records(predictions, references, lowercase),
                   **text_metrics.rouge_l_records(predictions, references)}
        text_names = [name for name in self.metrics if name in metric_fns.GENERATION]
        scores = text_metrics.functions(text_names, smooth, smooth_value)
        functions = {name: (lambda r, n, f=scores[name]: f(r)) if name in scores
                     else likelihood[name] for name in self.metrics}
        return self._report([records], 0, None, functions)

    # === Frozen-feature yardsticks of a pretrained backbone ===
    def knn(self, backbone: keras.Model, train, test, k: int = 20) -> Report:
        """Scores `backbone`'s frozen features by k-nearest-neighbour classification:
        each `test` example takes the majority class of its `k` most cosine-similar
        `train` examples (ties: the lowest class id, as scikit-learn's
        `KNeighborsClassifier(metric="cosine")`). No training at all: the standard
        quick yardstick of self-supervised pretraining.

        `train` and `test`: `tf.data.Dataset`s of `(inputs, labels)` batches (e.g.
        `pl.data.image_dataset(images, labels, shuffle=False)`) or `(inputs, labels)`
        pairs of arrays. Returns a classification `Report`.
        """
        validation.positive_int("k", k)
        self._need_classification("knn")
        train_x, train_y = probes.embed(backbone, train, "train")
        if k > len(train_x):
            raise ValueError(f"`k` must be at most the number of training examples "
                             f"({len(train_x)}). Received: k={k}")
        test_x, test_y = probes.embed(backbone, test, "test")
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        scores = probes.knn_scores(train_x, train_y, test_x, k, num_classes)
        return self._probe_report(scores, test_y, num_classes, test)

    def linear_probe(self, backbone: keras.Model, train, test, c: float = 1.0) -> Report:
        """Scores `backbone`'s frozen features by a linear probe: multinomial logistic
        regression with an L2 penalty (`c`: inverse strength, scikit-learn's `C`)
        fitted on the standardized `train` features to convergence, then evaluated on
        `test`. The headline yardstick of self-supervised pretraining. `train` and
        `test` as for `knn`. Returns a classification `Report`.
        """
        self._need_classification("linear_probe")
        classifier = probes.LogisticRegression(c=c)
        train_x, train_y = probes.embed(backbone, train, "train")
        test_x, test_y = probes.embed(backbone, test, "test")
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        classifier.fit(train_x, train_y, num_classes)
        return self._probe_report(classifier.decision_function(test_x), test_y, num_classes,
                                  test)

    def _need_classification(self, method: str) -> None:
        if self.task != "classification":
            raise ValueError(f"`{method}` classifies: the Evaluator's metrics must be "
                             f"classification metrics (e.g. 'accuracy'). Received: "
                             f"{list(self.metrics)}")

    def _probe_report(self, scores, labels, num_classes: int, test) -> Report:
        parts = [metric_fns.classification_records(scores, labels)]
        return self._report(parts, num_classes,
                            self.class_names or getattr(test, "class_names", None))

    def _evaluate_each_output(self, model, dataset, names: list) -> dict[str, Report]:
        targets = dataset.element_spec[1] if isinstance(dataset.element_spec, tuple) else None
        if not isinstance(targets, dict) or set(targets) != set(names):
            given = sorted(targets) if isinstance(targets, dict) else type(targets).__name__
            raise ValueError(
                f"The model has outputs {sorted(names)}: `dataset` must yield targets as a "
                f"dict by the same names; it yields {given}.")
        reports = {}
        for name in names:
            one = keras.Model(model.inputs, model.output[name], name=f"{model.name}_{name}")
            evaluator = copy.copy(self)
            class_names = (self.class_names if isinstance(self.class_names, dict)
                           else getattr(model, "class_names", None))
            evaluator.class_names = (tuple(class_names[name]) if isinstance(class_names, dict)
                                     and class_names.get(name) else None)
            one_dataset = dataset.map(lambda x, y, *w, name=name: (x, y[name], *w))
            reports[name] = evaluator.evaluate(one, one_dataset)
        return reports

    def label_efficiency(self, arms, pool, test, budgets, seeds: int = 3):
        """`pl.evaluation.label_efficiency` with this Evaluator's metrics: every arm
        trained on every label budget x seed, scored on `test`; returns a
        `StudyReport` (`.to_markdown()`, `.plot(path)`)."""
        from pretrainlib.evaluation.studies import label_efficiency

        return label_efficiency(self, arms, pool, test, budgets, seeds)

    def cross_validate(self, train, data, make_dataset, folds: int = 5, seed: int = 0):
        """`pl.evaluation.cross_validate` with this Evaluator's metrics."""
        from pretrainlib.evaluation.studies import cross_validate

        return cross_validate(self, train, data, make_dataset, folds, seed)

    def most_confident_mistakes(self, model, dataset: tf.data.Dataset, k: int = 10,
                                inputs=None) -> list[dict]:
        """The `k` wrong predictions the model (or ensemble) was surest of.

        Each mistake is `{"index", "label", "predicted", "confidence", "input"}`,
        sorted by confidence (the predicted class's probability); `index` counts
        examples in dataset order. `input` is the example's input as the dataset
        gave it (an image array, a dict of token ids), or `inputs[index]` when you
        pass the raw inputs in dataset order (e.g. the texts, to read them as text).
        Classification only. `plot_mistakes` draws image mistakes as a grid.

        Examples:
            >>> import numpy as np, keras, tensorflow as tf, pretrainlib as pl
            >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
            >>> ds = tf.data.Dataset.from_tensor_slices(
            ...     (np.eye(2, dtype="float32"), np.array([1, 0]))).batch(2)
            >>> mistakes = pl.Evaluator(["accuracy"]).most_confident_mistakes(
            ...     model, ds, k=5, inputs=["first", "second"])
            >>> all(m["input"] in ("first", "second") for m in mistakes)
            True
        """
        if self.task != "classification":
            raise ValueError(f"Mistakes are for classification; this Evaluator is {self.task}.")
        validation.positive_int("k", k)
        predict = _predictor(model, self.task, self.from_logits)
        found, offset = [], 0
        for batch in _batches(dataset):
            probabilities = _probabilities(predict(batch[0]), self.from_logits)
            labels = np.asarray(batch[1]).reshape(-1)
            predicted = probabilities.argmax(-1)
            for i in np.flatnonzero(predicted != labels):
                found.append({"index": offset + int(i), "label": int(labels[i]),
                              "predicted": int(predicted[i]),
                              "confidence": float(probabilities[i, predicted[i]]),
                              "input": _example(batch[0], i)})
            found = sorted(found, key=lambda m: -m["confidence"])[:k]
            offset += len(labels)
        if inputs is not None:
            for mistake in found:
                mistake["input"] = inputs[mistake["index"]]
        if self.class_names:
            for mistake in found:
                mistake["label_name"] = self.class_names[mistake["label"]]
                mistake["predicted_name"] = self.class_names[mistake["predicted"]]
        return found

    # === Records per task ===
    def _records(self, outputs, targets, weights):
        if self.task == "classification":
            labels = targets.reshape(-1)
            if outputs.ndim != 2 or outputs.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"Classification metrics ({', '.join(self.metrics)}) need [batch, "
                    f"classes] outputs for [batch] labels. Received: outputs {outputs.shape}, "
                    f"labels {targets.shape}"
                )
            if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
                raise ValueError("Classification labels must be non-negative integer class ids.")
            return metric_fns.classification_records(outputs.astype("float64"),
                                                     labels.astype("int64"))
        if self.task == "language_modeling":
            if outputs.ndim != 3 or targets.shape != outputs.shape[:2]:
                raise ValueError(
                    f"Language-modeling metrics ({', '.join(self.metrics)}) need per-token "
                    "logits [batch, tokens, vocab] and labels [batch, tokens]. Received: "
                    f"outputs {outputs.shape}, labels {targets.shape}"
                )
            weights = np.ones(targets.shape) if weights is None else weights
            return metric_fns.language_modeling_records(outputs, targets.astype("int64"),
                                                        weights)
        if outputs.shape[0] != targets.shape[0] or outputs.size != targets.size:
            raise ValueError(
                f"{self.task.replace('_', ' ').capitalize()} metrics "
                f"({', '.join(self.metrics)}) need outputs shaped like the targets. "
                f"Received: outputs {outputs.shape}, targets {targets.shape}"
            )
        if self.task == "regression":
            return metric_fns.regression_records(outputs, targets)
        return metric_fns.reconstruction_records(outputs.reshape(targets.shape), targets,
                                                 weights)

    def _intervals(self, records, num_classes, num_examples, functions=None):
        if not self.bootstrap:
            return {}
        functions = functions or self._functions
        rng = np.random.default_rng(self.seed)
        draws = {name: [] for name in self.metrics}
        for _ in range(self.bootstrap):
            sample = metric_fns.select(records, rng.integers(0, num_examples, num_examples))
            for name, fn in functions.items():
                draws[name].append(fn(sample, num_classes))
        tail = (1 - self.confidence) / 2 * 100
        return {name: tuple(float(q) for q in np.nanpercentile(values, [tail, 100 - tail]))
                for name, values in draws.items()}


def _check_bleu_options(smooth: str, smooth_value) -> None:
    validation.one_of("smooth", smooth, text_metrics.SMOOTHING)
    if smooth_value is not None:
        validation.positive_float("smooth_value", smooth_value)


def _references(references, count: int) -> list[list[str]]:
    """`references` as a list of reference lists, one per prediction."""
    if isinstance(references, str) or not isinstance(references, (list, tuple)):
        raise TypeError("`references` must be a list of texts (one per prediction) or of "
                        f"lists of texts. Received: {type(references).__name__}")
    if len(references) != count:
        raise ValueError(f"`references` has {len(references)} entries for {count} "
                         "predictions; give one (or a list of several) per prediction.")
    out = []
    for entry in references:
        entry = [entry] if isinstance(entry, str) else entry
        if (not isinstance(entry, (list, tuple)) or not entry
                or not all(isinstance(t, str) for t in entry)):
            raise TypeError("Each entry of `references` must be a text or a non-empty list "
                            f"of texts. Received: {entry!r}")
        out.append(list(entry))
    return out


def _output_names(model) -> list[str] | None:
    """The names of a single model's dict outputs, or None."""
    if isinstance(model, (list, tuple)):
        return None
    try:
        output = model.output
    except (AttributeError, ValueError):  # a subclassed model never called
        return None
    return list(output) if isinstance(output, dict) else None


def _batches(dataset):
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "`dataset` must be a tf.data.Dataset of (inputs, targets). "
            f"Received: dataset of type {type(dataset).__name__}"
        )
    for batch in dataset:
        if not isinstance(batch, tuple) or len(batch) not in (2, 3):
            raise ValueError(
                "`dataset` must yield (inputs, targets) or (inputs, targets, weights); "
                f"it yielded a {type(batch).__name__}."
            )
        yield batch


def _predictor(model, task: str, from_logits: bool):
    """A function inputs -> numpy outputs, averaging over a list of models."""
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models or not all(isinstance(m, keras.Model) for m in models):
        raise TypeError(
            "`model` must be a Keras model or a non-empty list of them (an ensemble). "
            f"Received: {type(model).__name__}"
        )
    if len(models) == 1:
        return lambda x: np.asarray(models[0].predict_on_batch(x))

    def average(x):
        outputs = [np.asarray(m.predict_on_batch(x)) for m in models]
        if task == "classification":  # average probabilities, keep log form
            mean = np.mean([_probabilities(o, from_logits) for o in outputs], axis=0)
            return np.log(mean + 1e-12) if from_logits else mean
        return np.mean(outputs, axis=0)

    return average


def _probabilities(outputs: np.ndarray, from_logits: bool) -> np.ndarray:
    outputs = outputs.astype("float64")
    if not from_logits:
        return outputs
    shifted = np.exp(outputs - outputs.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _example(inputs, i: int):
    if isinstance(inputs, dict):
        return {key: np.asarray(value[i]) for key, value in inputs.items()}
    return np.asarray(inputs[i])


def plot_mistakes(mistakes: list[dict], path: str, class_names=None, columns: int = 5) -> str:
    """Draws image mistakes (from `Evaluator.most_confident_mistakes`) as a PNG grid,
    each titled `true -> predicted (confidence)`. Needs matplotlib."""
    plt = pyplot("plot_mistakes")
    if not mistakes:
        raise ValueError("`mistakes` is empty: nothing to draw.")
    rows = -(-len(mistakes) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, mistake in zip(axes.flat, mistakes):
        image = np.asarray(mistake["input"])
        if image.ndim not in (2, 3):
            raise ValueError(f"plot_mistakes draws images; an input has shape {image.shape}.")
        ax.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                  cmap="gray")
        names = class_names or [str(c) for c in range(max(mistake["label"],
                                                           mistake["predicted"]) + 1)]
        ax.set_title(f"{names[mistake['label']]} -> {names[mistake['predicted']]}\n"
                     f"({mistake['confidence']:.2f})", fontsize=8)
    fig.suptitle("most confident mistakes: true -> predicted (confidence)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
