"""Which freezing policy for this backbone and these labels? Each policy fine-tuned on
a fresh copy with its own learning-rate grid, then scored once on the test data."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import numpy as np
import tensorflow as tf

from pretrainlib.evaluation import Evaluator
from pretrainlib.freezing.peft import Transform
from pretrainlib.freezing.policy import FreezePolicy
from pretrainlib.training.inputs import as_dataset
from pretrainlib.tune.search import search

__all__ = ["PolicyComparison", "PolicyResult", "compare_policies", "default_learning_rates"]

# Policies that train few weights from a frozen start want larger rates (measured on
# WordNet: docs/results.md's policy table picked from these grids).
_FEW_WEIGHTS = ("FeatureExtraction", "BitFit", "LoRA", "Adapters")
HIGH, LOW = (1e-2, 3e-3), (1e-3, 3e-4)


def default_learning_rates(policy) -> tuple[float, ...]:
    """The rate grid `compare_policies` tries for `policy` unless told otherwise:
    `(1e-2, 3e-3)` for the policies that train few weights (`FeatureExtraction`,
    `BitFit`, `LoRA`, `Adapters`), `(1e-3, 3e-4)` for the others.

    Examples:
        >>> import pretrainlib as pl
        >>> pl.tune.default_learning_rates(pl.freezing.LoRA(8))
        (0.01, 0.003)
        >>> pl.tune.default_learning_rates(pl.freezing.FreezeThenUnfreeze(1))
        (0.001, 0.0003)
    """
    return HIGH if type(policy).__name__ in _FEW_WEIGHTS else LOW


@dataclasses.dataclass
class PolicyResult:
    """One policy's outcome: the `learning_rate` its validation score chose, that
    `validation` score, the `test` metrics of that model, the variables it trained
    in its last stage and the seconds its trials took.

    Examples:
        >>> import pretrainlib as pl
        >>> row = pl.tune.PolicyResult("LoRA(rank=8)", 1e-2, 0.71, {"macro_f1": 0.69}, 4096, 12.0)
        >>> row.test["macro_f1"]
        0.69
    """

    name: str
    learning_rate: float
    validation: float
    test: dict
    trainable_params: int
    seconds: float


@dataclasses.dataclass
class PolicyComparison:
    """What `compare_policies` returns: a `PolicyResult` per policy, in the order
    given, and the best model of each (`models[name]`).

    Examples:
        >>> import pretrainlib as pl
        >>> comparison = pl.tune.PolicyComparison(
        ...     [pl.tune.PolicyResult("BitFit()", 1e-2, 0.6, {"macro_f1": 0.58}, 900, 5.0),
        ...      pl.tune.PolicyResult("FullFineTune()", 1e-3, 0.7, {"macro_f1": 0.66}, 9e4, 9.0)],
        ...     monitor="val_macro_f1", mode="max", models={})
        >>> comparison.best.name
        'FullFineTune()'
        >>> print(comparison.to_markdown().splitlines()[2])
        | BitFit() | 0.01 | 0.6000 | 0.5800 | 900 | 5 |
    """

    results: list
    monitor: str
    mode: str
    models: dict

    @property
    def best(self) -> PolicyResult:
        """The policy with the best validation score (the test set chooses nothing)."""
        pick = max if self.mode == "max" else min
        return pick(self.results, key=lambda result: result.validation)

    def to_markdown(self) -> str:
        metrics = list(self.results[0].test)
        rows = [f"| policy | learning rate | {self.monitor} | "
                + " | ".join(f"test {m}" for m in metrics)
                + " | trainable params (last stage) | seconds |",
                "|" + "---|" * (len(metrics) + 5)]
        for r in self.results:
            rows.append(f"| {r.name} | {r.learning_rate:g} | {r.validation:.4f} | "
                        + " | ".join(f"{r.test[m]:.4f}" for m in metrics)
                        + f" | {r.trainable_params:,} | {r.seconds:.0f} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.to_markdown()


def compare_policies(model: keras.Model, x=None, y=None, *, validation_data=None,
                     test_data=None, policies=None, learning_rate=None, epochs: int = 20,
                     monitor: str = "val_macro_f1", mode: str = "auto", patience: int = 5,
                     batch_size: int | None = None, evaluator=None, seed: int = 0,
                     verbose: int = 0) -> PolicyComparison:
    """Fine-tunes a fresh copy of the FineTuner `model` under each policy (freezing
    policies and transforms alike), each with its own learning-rate grid and early
    stopping on `monitor`, keeps each policy's best rate by validation, and scores
    that model once on `test_data`. The library call behind the policy table of the
    results page, on your own data.

    Args:
        model: a compiled `pl.FineTuner` with the pretrained backbone and the head
            (compiled with an optimizer string; each trial sets its rate).
        x: the training data, as `fit` takes it.
        y: its labels, when `x` is arrays or raw inputs.
        validation_data: what rates and epochs are chosen on (never the test set).
        test_data: a `tf.data.Dataset` of `(inputs, labels)` batches, or an
            `(inputs, labels)` pair as `fit` takes them (batched by `batch_size`,
            default 32), scored once per policy by `evaluator`.
        policies: a list of `pl.freezing` policies or transforms (`LoRA`, `BitFit`,
            `Adapters`: trained with `FullFineTune` around them), or a dict of them by
            name (default name: the policy's repr).
        learning_rate: the rates every policy tries, or a dict by name; default
            `default_learning_rates(policy)`.
        epochs: each trial's budget (early stopping may end it sooner).
        monitor: the validation metric that stops trials early and ranks them.
        mode: `"max"`, `"min"` or `"auto"`, as in `search`.
        patience: epochs without improvement before a trial stops.
        batch_size: for arrays or raw inputs.
        evaluator: a `pl.Evaluator` (default: accuracy and macro-F1).
        seed: every trial starts from `keras.utils.set_random_seed(seed)`.
        verbose: passed to `fit`.

    Examples:
        >>> import tensorflow as tf, pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat", "the dog barks"] * 8, [0, 1, 0] * 8
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2))
        >>> ft.compile()
        >>> data = pl.data.text_dataset(texts, tok, labels=labels, batch_size=8,
        ...                             sequence_length=8, shuffle=False)
        >>> comparison = pl.tune.compare_policies(
        ...     ft, data, validation_data=data, test_data=data, epochs=2,
        ...     policies=[pl.freezing.FeatureExtraction(), pl.freezing.LoRA(rank=2)])
        >>> [(r.name, r.learning_rate in (1e-2, 3e-3)) for r in comparison.results]
        [('FeatureExtraction()', True), ('LoRA(rank=2)', True)]
    """
    if not hasattr(model, "policy"):
        raise ValueError("`model` must be a pl.FineTuner: policies are what it fine-tunes "
                         f"under. Received: {type(model).__name__}")
    if test_data is None:
        raise ValueError("`test_data` is required: each policy's chosen model is scored on "
                         "it once (a tf.data.Dataset of (inputs, labels) batches).")
    named = _named(policies)
    test_data = _test_dataset(model, test_data, batch_size)
    rates = {name: _rates(name, policy, learning_rate) for name, policy in named.items()}
    if evaluator is None:
        evaluator = Evaluator(["accuracy", "macro_f1"])
    results, models = [], {}
    for name, policy in named.items():
        found = search(model, x, y, validation_data=validation_data,
                       learning_rate=list(rates[name]), policy=[policy], epochs=[epochs],
                       monitor=monitor, mode=mode, patience=patience,
                       batch_size=batch_size, seed=seed, verbose=verbose)
        best = found.best_model
        report = evaluator.evaluate(best, test_data)
        trained = sum(int(np.prod(v.shape)) for v in best.trainable_variables)
        results.append(PolicyResult(name, found.best.params["learning_rate"], found.best.score,
                                    dict(report.metrics), trained,
                                    sum(t.seconds for t in found.trials)))
        models[name] = best
        mode = found.mode
    return PolicyComparison(results, monitor, mode, models)


def _test_dataset(model, data, batch_size):
    """`data` as batches the Evaluator reads: a dataset as it is; an `(inputs, labels)`
    pair as `fit` reads it (raw inputs through the model's preprocessor), in order."""
    if isinstance(data, tuple) and len(data) == 2:
        return as_dataset("test_data", *data, batch_size=batch_size, shuffle=False,
                          preprocessor=getattr(model, "preprocessor", None))
    if not isinstance(data, tf.data.Dataset):
        raise ValueError("`test_data` must be a tf.data.Dataset of (inputs, labels) batches "
                         f"or an (inputs, labels) pair. Received: {type(data).__name__}")
    return data


def _named(policies) -> dict:
    if policies is None or (hasattr(policies, "__len__") and not len(policies)):
        raise ValueError("`policies` is empty: give a list of pl.freezing policies or "
                         "transforms, e.g. [pl.freezing.FeatureExtraction(), "
                         "pl.freezing.LoRA(rank=8)].")
    given = dict(policies) if isinstance(policies, dict) else dict(enumerate(policies))
    for key, policy in given.items():
        if not isinstance(policy, (FreezePolicy, Transform)):
            raise ValueError(f"`policies` must hold pl.freezing policies or transforms; "
                             f"{policy!r} is a {type(policy).__name__}.")
    named = dict(policies) if isinstance(policies, dict) else {
        _short_name(policy): policy for policy in policies}
    if len(named) < len(policies):
        raise ValueError("Two `policies` have the same name; pass a dict to name them.")
    return named


def _short_name(policy) -> str:
    """`LoRA(rank=2)`: the class and the arguments that differ from their defaults."""
    try:
        config = policy.get_config()
        defaults = {name: p.default for name, p in
                    inspect.signature(type(policy).__init__).parameters.items()}
    except (NotImplementedError, TypeError, ValueError):
        return repr(policy)
    shown = [f"{k}={v!r}" for k, v in config.items()
             if k not in defaults or defaults[k] is inspect.Parameter.empty
             or _differs(v, defaults[k])]
    return f"{type(policy).__name__}({', '.join(shown)})"


def _differs(value, default) -> bool:
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value) != default
    return value != default


def _rates(name, policy, learning_rate) -> tuple:
    if learning_rate is None:
        return default_learning_rates(policy)
    if isinstance(learning_rate, dict):
        if name not in learning_rate:
            raise ValueError(f"`learning_rate` has no rates for {name!r}; give rates for "
                             f"every policy: {sorted(learning_rate)}")
        return tuple(learning_rate[name]) if isinstance(learning_rate[name], (list, tuple)) \
            else (learning_rate[name],)
    return tuple(learning_rate) if isinstance(learning_rate, (list, tuple)) else (learning_rate,)
