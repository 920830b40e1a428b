"""A small grid search over fine-tuning settings, each trial on a fresh copy.

Every trial starts from the model as you pass it (saved and loaded, so the same
pretrained weights and head every time and the model itself untouched), compiled as
you compiled it but for the rate, trained with early stopping on the validation
data and scored by its best epoch. What is searched: the learning rate, the
freezing policy and the epoch budget, the three a fine-tuning recipe turns on; for
anything else, KerasTuner (see the guide).
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import keras
import numpy as np

from pretrainlib.freezing.peft import Transform
from pretrainlib.freezing.policy import FreezePolicy
from pretrainlib.training import defaults
from pretrainlib.tune.lr_finder import copy_of

__all__ = ["SearchResult", "Trial", "search"]

_HIGHER_IS_BETTER = ("acc", "f1", "auc", "precision", "recall", "r2")


@dataclasses.dataclass
class Trial:
    """One setting tried: its `params`, its best `score` on the monitored metric and
    the epoch it came at (1-based), the epochs run and the seconds taken.

    Examples:
        >>> import pretrainlib as pl
        >>> trial = pl.tune.Trial({"learning_rate": 1e-3, "epochs": 10}, score=0.61,
        ...                       best_epoch=4, epochs_run=7, seconds=3.2)
        >>> trial.epochs_run - trial.best_epoch  # the epochs early stopping waited
        3
    """

    params: dict
    score: float
    best_epoch: int
    epochs_run: int
    seconds: float


@dataclasses.dataclass
class SearchResult:
    """What `search` found: every `Trial`, the best one and its trained model.

    Examples:
        >>> import pretrainlib as pl
        >>> result = pl.tune.SearchResult(
        ...     [pl.tune.Trial({"learning_rate": 1e-3}, 0.61, 4, 7, 3.2),
        ...      pl.tune.Trial({"learning_rate": 3e-4}, 0.55, 6, 9, 4.0)],
        ...     monitor="val_macro_f1", mode="max", best_model=None)
        >>> result.best.params
        {'learning_rate': 0.001}
        >>> print(result.to_markdown().splitlines()[2])
        | 0.001 | 0.6100 | 4 | 7 | 3.2 |
    """

    trials: list
    monitor: str
    mode: str
    best_model: keras.Model | None

    @property
    def best(self) -> Trial:
        pick = max if self.mode == "max" else min
        return pick(self.trials, key=lambda trial: trial.score)

    def to_markdown(self) -> str:
        names = list(self.trials[0].params)
        rows = [f"| {' | '.join(names)} | {self.monitor} | best epoch | epochs | seconds |",
                "|" + "---|" * (len(names) + 4)]
        for trial in self.trials:
            values = [_shown(trial.params[name]) for name in names]
            rows.append(f"| {' | '.join(values)} | {trial.score:.4f} | {trial.best_epoch} | "
                        f"{trial.epochs_run} | {trial.seconds:.1f} |")
        return "\n".join(rows)

    def __str__(self) -> str:
        return f"best {self.best.params}: {self.monitor} {self.best.score:.4f}\n" + \
            self.to_markdown()


def search(model: keras.Model, x=None, y=None, *, validation_data=None,
           learning_rate=(1e-3,), policy=None, epochs=(10,),
           monitor: str = "val_macro_f1", mode: str = "auto", patience: int = 3,
           batch_size: int | None = None, seed: int = 0, verbose: int = 0) -> SearchResult:
    """Fine-tunes a fresh copy of `model` for every combination of `learning_rate`,
    `policy` and `epochs`, each with early stopping on `monitor` (best weights
    restored); returns every trial's score and the best trained model.

    Args:
        model: a compiled model of this library (a FineTuner to search `policy`),
            compiled with a string optimizer (the rate is set per trial).
        x: the training data, as `fit` takes it.
        y: labels, when `x` is arrays or raw inputs.
        batch_size: the batch size for arrays or raw inputs.
        validation_data: what `monitor` is read on (required: never the test set).
        learning_rate: peak rates to try.
        policy: `pl.freezing` policies to try (default: the model's own); a
            transform (`LoRA`, `BitFit`, `Adapters`) trains under `FullFineTune`.
        epochs: epoch budgets to try (early stopping may end a trial sooner).
        monitor: the validation metric the trials are ranked by.
        mode: `"max"`, `"min"`, or `"auto"` (max for accuracy, F1, AUC,
            precision, recall and R², min otherwise).
        patience: epochs without improvement before a trial stops.
        seed: every trial starts from `keras.utils.set_random_seed(seed)`.
        verbose: passed to `fit`.

    Examples:
        >>> import pretrainlib as pl
        >>> texts, labels = ["a small dog", "a large cat", "the dog barks"] * 8, [0, 1, 0] * 8
        >>> tok = pl.text.WordPieceTokenizer.train(texts, vocab_size=40)
        >>> encoder = pl.backbones.TextEncoder(tok.vocab_size, num_layers=1, hidden_dim=16,
        ...                                    max_sequence_length=8)
        >>> ft = pl.FineTuner(encoder, pl.heads.Classifier(2),
        ...                   preprocessor=pl.text.TextPreprocessor(tok, sequence_length=8))
        >>> ft.compile()
        >>> result = pl.tune.search(ft, texts, labels, validation_data=(texts, labels),
        ...                         learning_rate=[1e-3, 1e-2], epochs=[2])
        >>> len(result.trials), result.best_model is not ft
        (2, True)
    """
    if not hasattr(model, "_compile_arguments"):
        raise ValueError("`model` must be a compiled model of this library (a FineTuner or "
                         "Pretrainer): call model.compile(...) first.")
    arguments = defaults.recall(model._compile_arguments)
    if not isinstance(arguments["optimizer"], str):
        raise ValueError("`search` sets the rate of each trial: compile `model` with an "
                         "optimizer string (e.g. 'adamw'), not an optimizer instance.")
    if validation_data is None:
        raise ValueError("`validation_data` is required: the trials are ranked on it "
                         "(keep the test set for the end).")
    rates = _values("learning_rate", learning_rate, lambda v: isinstance(v, (int, float))
                    and not isinstance(v, bool) and v >= 0, "rates >= 0")
    budgets = _values("epochs", epochs, lambda v: isinstance(v, int)
                      and not isinstance(v, bool) and v > 0, "positive integers")
    policies = [None]
    if policy is not None:
        if not hasattr(model, "policy"):
            raise ValueError("`policy` is searched for a FineTuner; this model has none.")
        policies = _values("policy", policy,
                           lambda v: isinstance(v, (FreezePolicy, Transform)),
                           "pl.freezing policies or transforms")
        if model.adapters is not None and any(isinstance(p, Transform) for p in policies):
            raise ValueError("`model` already has `adapters`; search transforms (`policy=`"
                             "[LoRA(...), ...]) on a FineTuner built without them.")
    if mode == "auto":
        mode = "max" if any(word in monitor for word in _HIGHER_IS_BETTER) else "min"
    if mode not in ("max", "min"):
        raise ValueError(f"`mode` must be 'max', 'min' or 'auto'. Received: mode={mode!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"`patience` must be a positive integer. Received: patience={patience!r}")

    trials, best_model, best_score = [], None, None
    for rate, chosen, budget in itertools.product(rates, policies, budgets):
        keras.utils.set_random_seed(seed)
        trial_model = copy_of(model)
        if chosen is not None:
            trial_model = _with_policy(trial_model, chosen)
        trial_model.compile(**{**arguments, "learning_rate": rate})
        stop = keras.callbacks.EarlyStopping(monitor, mode=mode, patience=patience,
                                             restore_best_weights=True)
        start = time.perf_counter()
        history = trial_model.fit(x, y, batch_size=batch_size, epochs=budget,
                                  validation_data=validation_data, callbacks=[stop],
                                  verbose=verbose).history
        if monitor not in history:
            raise ValueError(f"`monitor={monitor!r}` is not among the metrics fit reports: "
                             f"{sorted(history)}.")
        scores = np.asarray(history[monitor], float)
        index = int(np.argmax(scores) if mode == "max" else np.argmin(scores))
        params = {"learning_rate": rate}
        if policy is not None:
            params["policy"] = chosen
        params["epochs"] = budget
        trial = Trial(params, float(scores[index]), index + 1, len(scores),
                      time.perf_counter() - start)
        if not trials or _better(trial.score, best_score, mode):
            best_model, best_score = trial_model, trial.score
        trials.append(trial)
    return SearchResult(trials, monitor, mode, best_model)


def _better(score, previous, mode) -> bool:
    return score > previous if mode == "max" else score < previous


def _values(name, given, valid, described) -> list:
    values = list(given) if isinstance(given, (list, tuple)) else [given]
    if not values or not all(valid(v) for v in values):
        raise ValueError(f"`{name}` must be one or a list of {described}. "
                         f"Received: {name}={given!r}")
    return values


def _with_policy(model, policy):
    """`model` (a FineTuner copy) with `policy` instead of its own, on the same parts."""
    return type(model)(model.backbone, model.head, policy=policy, adapters=model.adapters,
                       preprocessor=model.preprocessor, groups=model._parts.patterns,
                       batchnorm=model.batchnorm, pairs=model.pairs,
                       epochs_trained=model.epochs_trained,
                       frozen_variables=list(model._parts.frozen),
                       class_names=model.class_names)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
