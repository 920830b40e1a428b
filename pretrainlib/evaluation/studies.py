"""Studies over many trainings: k-fold cross-validation and label-efficiency curves."""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Mapping, Sequence

import keras
import numpy as np

from pretrainlib import validation
from pretrainlib.evaluation.report import pyplot
from pretrainlib.evaluation.statistics import PairedDifference, paired_difference, spread


@dataclasses.dataclass
class StudyReport:
    """Results of a study: one row per (arm, budget, seed or fold) run.

    Attributes:
        runs: list of `{"arm", "budget", "seed", **metrics}` dicts.
        metrics: the metric names reported.

    Examples:
        >>> from pretrainlib.evaluation.studies import StudyReport
        >>> r = StudyReport([{"arm": "a", "budget": 10, "seed": 0, "accuracy": 0.5},
        ...                  {"arm": "a", "budget": 10, "seed": 1, "accuracy": 0.7}], ["accuracy"])
        >>> r.summary()["a"][10]["accuracy"]["mean"]
        0.6
    """

    runs: list[dict]
    metrics: list[str]

    def summary(self) -> dict:
        """`{arm: {budget: {metric: {"mean", "std", "n"}}}}` over seeds (or folds);
        `std` is the sample standard deviation (ddof=1), as everywhere in the library."""
        table: dict = {}
        for run in self.runs:
            table.setdefault(run["arm"], {}).setdefault(run["budget"], []).append(run)
        return {
            arm: {budget: {m: spread([r[m] for r in rows]).to_dict()
                           for m in self.metrics if m in rows[0]}
                  for budget, rows in sorted(budgets.items())}
            for arm, budgets in table.items()
        }

    def difference(self, a: str, b: str, budget, metric: str | None = None,
                   confidence: float = 0.95) -> PairedDifference:
        """`a - b` at `budget`, paired by seed, with its Student-t interval over seeds
        (`.verdict(a, b)` says "a beats b" only when the interval is above zero).

        Examples:
            >>> from pretrainlib.evaluation.studies import StudyReport
            >>> runs = [{"arm": arm, "budget": 50, "seed": s, "f1": f}
            ...         for arm, scores in {"pre": [0.70, 0.66, 0.68],
            ...                             "scratch": [0.36, 0.33, 0.37]}.items()
            ...         for s, f in enumerate(scores)]
            >>> StudyReport(runs, ["f1"]).difference("pre", "scratch", 50).verdict("pre", "scratch")
            'pre beats scratch'
        """
        metric = metric or self.metrics[0]

        def scores(arm: str) -> dict:
            found = {r["seed"]: r[metric] for r in self.runs
                     if r["arm"] == arm and r["budget"] == budget}
            if not found:
                raise ValueError(f"no runs of arm {arm!r} at budget {budget!r}; arms: "
                                 f"{sorted({r['arm'] for r in self.runs})}.")
            return found

        sa, sb = scores(a), scores(b)
        seeds = sorted(set(sa) & set(sb))
        return paired_difference([sa[s] for s in seeds], [sb[s] for s in seeds], confidence)

    def to_markdown(self, metric: str | None = None) -> str:
        """A table with budgets as rows and arms as columns: mean ± std of `metric`."""
        metric = metric or self.metrics[0]
        summary = self.summary()
        budgets = sorted({b for arm in summary.values() for b in arm})
        lines = ["| labels | " + " | ".join(summary) + " |", "|---|" + "---|" * len(summary)]
        for budget in budgets:
            cells = []
            for arm in summary.values():
                cell = arm.get(budget, {}).get(metric)
                cells.append(f"{cell['mean']:.3f} ± {cell['std']:.3f}" if cell else "")
            lines.append(f"| {budget} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "summary": self.summary(), "runs": self.runs}

    def to_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def plot(self, path: str, metric: str | None = None, title: str | None = None) -> str:
        """Writes `metric` (mean ± std over seeds) against the number of labels, one
        line with error bars per arm, as a PNG (needs matplotlib)."""
        plt = pyplot("StudyReport.plot")
        metric = metric or self.metrics[0]
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm, budgets in self.summary().items():
            xs = sorted(budgets)
            means = [budgets[b][metric]["mean"] for b in xs]
            stds = [budgets[b][metric]["std"] for b in xs]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4, label=arm)
        ax.set_xscale("log")
        xs = sorted({r["budget"] for r in self.runs})
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("labeled training examples")
        ax.set_ylabel(f"test {metric} (mean ± sample std over seeds)")
        ax.set_title(title or f"{metric} vs number of labels")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


TrainFn = Callable[..., object]


def label_efficiency(evaluator, arms: Mapping[str, TrainFn], pool, test, budgets: Sequence[int],
                     seeds: int = 3) -> StudyReport:
    """Trains every arm on every label budget x seed and scores it on one test set.

    Args:
        evaluator: a `pl.Evaluator`; its metrics are reported.
        arms: `{name: train(subset, seed)}`; `subset` is `pool.sample(budget, seed)` (a
            stratified draw, so every class is present), and `train` returns a Keras
            model (scored with `evaluator` on `test`) or a dict of metric values it
            computed itself (e.g. for a scikit-learn baseline).
        pool: labeled data with `.sample(n, seed)` (e.g. `wordnet.train`).
        test: the test `tf.data.Dataset` every Keras model is scored on.
        budgets: numbers of labeled examples.
        seeds: seeds per budget; seed `s` draws the same subset for every arm.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> from pretrainlib.datasets import LabeledImages
        >>> pool = LabeledImages(np.zeros((40, 2, 2), "uint8"), np.arange(40) % 2, ("a", "b"))
        >>> guess = lambda subset, seed: {"accuracy": float(subset.labels.mean())}
        >>> study = pl.evaluation.label_efficiency(pl.Evaluator(["accuracy"]), {"guess": guess},
        ...                                        pool, test=None, budgets=[4, 8], seeds=2)
        >>> sorted(study.summary()["guess"])
        [4, 8]
    """
    if not arms:
        raise ValueError("`arms` is empty; pass {name: train(subset, seed)}.")
    budgets = sorted(validation.positive_int("budgets", b) for b in budgets)
    validation.positive_int("seeds", seeds)
    runs = []
    for budget in budgets:
        for seed in range(seeds):
            subset = pool.sample(budget, seed=seed)
            for name, train in arms.items():
                runs.append({"arm": name, "budget": budget, "seed": seed,
                             **_score(evaluator, train(subset, seed), test, name)})
    return StudyReport(runs, list(evaluator.metrics))


def cross_validate(evaluator, train: TrainFn, data, make_dataset: Callable, folds: int = 5,
                   seed: int = 0) -> StudyReport:
    """Stratified k-fold cross-validation over a labeled dataset.

    Args:
        evaluator: a `pl.Evaluator`.
        train: `train(train_part, fold) -> Keras model (or dict of metrics)`; the
            parts are the same type as `data` (e.g. `LabeledTexts`).
        data: labeled data with `.labels` that `subset(data, index)` can slice:
            `LabeledTexts`, `LabeledImages`.
        make_dataset: `make_dataset(test_part) -> tf.data.Dataset` to score on.
        folds: number of folds (at least 2, at most the smallest class's size).
        seed: seed of the fold assignment.

    Examples:
        >>> import numpy as np, pretrainlib as pl
        >>> from pretrainlib.datasets import LabeledImages
        >>> data = LabeledImages(np.zeros((30, 2, 2), "uint8"), np.arange(30) % 3, ("a", "b", "c"))
        >>> majority = lambda part, fold: {"accuracy": 1 / 3}
        >>> cv = pl.evaluation.cross_validate(pl.Evaluator(["accuracy"]), majority, data,
        ...                                   make_dataset=None, folds=3)
        >>> len(cv.runs), cv.summary()["cross-validation"][20]["accuracy"]["n"]
        (3, 3)
    """
    labels = np.asarray(data.labels)
    validation.positive_int("folds", folds)
    smallest = int(np.bincount(labels)[np.bincount(labels) > 0].min())
    if not 2 <= folds <= smallest:
        raise ValueError(
            f"`folds` must be between 2 and the smallest class's size ({smallest}). "
            f"Received: folds={folds}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), "int64")
    dealt = 0
    for c in np.unique(labels):  # stratified: deal each class's shuffled members round-robin,
        members = rng.permutation(np.flatnonzero(labels == c))  # continuing where the
        fold_of[members] = (dealt + np.arange(len(members))) % folds  # last class stopped
        dealt += len(members)
    runs = []
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        test_part = subset(data, held_out)
        result = train(subset(data, np.flatnonzero(fold_of != fold)), fold)
        test = make_dataset(test_part) if isinstance(result, keras.Model) else None
        runs.append({"arm": "cross-validation", "budget": len(labels) - len(held_out),
                     "seed": fold, **_score(evaluator, result, test, "train")})
    for run in runs:  # folds differ in size by at most one per class: report one budget
        run["budget"] = min(r["budget"] for r in runs)
    return StudyReport(runs, list(evaluator.metrics))


def subset(data, index: np.ndarray):
    """The examples `index` of a `LabeledTexts` or `LabeledImages`."""
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    sliced = {}
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            sliced[name] = value[index]
        elif isinstance(value, list):
            sliced[name] = [value[i] for i in index]
        else:
            sliced[name] = value
    return type(data)(**sliced)


def _score(evaluator, result, test, name: str) -> dict:
    if isinstance(result, keras.Model):
        return dict(evaluator.evaluate(result, test).metrics)
    if isinstance(result, Mapping):
        missing = [m for m in evaluator.metrics if m not in result]
        if missing:
            raise ValueError(f"Arm {name!r} returned metrics without {missing}.")
        return {m: float(result[m]) for m in evaluator.metrics}
    raise TypeError(
        f"Arm {name!r} must return a trained Keras model or a dict of metric values. "
        f"Received: {type(result).__name__}")
