"""Evaluation reports: numbers first, then tables, JSON and plots."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from pretrainlib.evaluation import metrics as metric_fns


@dataclasses.dataclass
class Report:
    """What `Evaluator.evaluate` returns.

    Attributes:
        metrics: `{name: value}` for the metrics asked for.
        confusion: the confusion matrix (rows true, columns predicted); None for
            tasks other than classification.
        class_names: names of the classes, if known.
        num_examples: how many examples were evaluated.
        intervals: `{name: (low, high)}` bootstrap confidence intervals, if asked for.
        task: the metrics' task (`classification`, `regression`, ...).
        confidence: the intervals' coverage.
        predictions: the generated texts (`Evaluator.evaluate_generation`), else None.

    Examples:
        >>> import numpy as np
        >>> from pretrainlib.evaluation import Report
        >>> r = Report({"accuracy": 0.5}, np.array([[1, 1], [0, 0]]), ("a", "b"), 2)
        >>> r.to_dict()["metrics"]
        {'accuracy': 0.5}
    """

    metrics: dict[str, float]
    confusion: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    num_examples: int = 0
    intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    task: str = "classification"
    confidence: float = 0.95
    predictions: list[str] | None = None

    def names(self) -> list[str]:
        n = 0 if self.confusion is None else self.confusion.shape[0]
        return list(self.class_names) if self.class_names else [str(i) for i in range(n)]

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class (classification only)."""
        if self.confusion is None:
            return {}
        table = metric_fns.per_class(self.confusion)
        return {name: {k: float(v[i]) for k, v in table.items()}
                for i, name in enumerate(self.names())}

    def to_dict(self) -> dict:
        result = {"task": self.task, "metrics": dict(self.metrics),
                  "num_examples": self.num_examples}
        if self.intervals:
            result["intervals"] = {k: list(v) for k, v in self.intervals.items()}
            result["confidence"] = self.confidence
        if self.confusion is not None:
            result.update(per_class=self.per_class(), confusion=self.confusion.tolist(),
                          class_names=self.names())
        return result

    def _cell(self, name: str) -> str:
        value = f"{self.metrics[name]:.4f}"
        if name in self.intervals:
            low, high = self.intervals[name]
            value += f"  [{low:.4f}, {high:.4f}]"
        return value

    def to_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def to_markdown(self) -> str:
        header = (f"| metric | value | {self.confidence:.0%} interval |\n|---|---|---|"
                  if self.intervals else "| metric | value |\n|---|---|")
        lines = [header]
        for name, value in self.metrics.items():
            interval = self.intervals.get(name)
            cell = f" [{interval[0]:.4f}, {interval[1]:.4f}] |" if interval else ""
            lines.append(f"| {name} | {value:.4f} |{cell}")
        if self.confusion is None:
            return "\n".join(lines)
        lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        for name, row in self.per_class().items():
            lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
                         f"{row['f1']:.3f} | {int(row['support'])} |")
        return "\n".join(lines)

    def __str__(self) -> str:
        width = max(len(k) for k in self.metrics)
        title = f"Report on {self.num_examples} examples ({self.task})"
        if self.intervals:
            title += f", {self.confidence:.0%} bootstrap intervals"
        rows = [f"{k:<{width}}  {self._cell(k)}" for k in self.metrics]
        return title + "\n" + "\n".join(rows)

    def plot(self, path: str, history=None) -> str:
        """Writes the report's figures, two to a row, into one PNG at `path`.

        Classification: the confusion matrix and per-class precision / recall / F1
        bars. Other tasks: the metric values, with their bootstrap intervals as error
        bars when the report has them. With `history` (a `keras.callbacks.History`,
        what `fit` returns, or its `.history` dict) a learning-curve panel is added for
        each quantity it tracked (`loss` next to `val_loss`, ...). Needs matplotlib.
        """
        plt = pyplot("Report.plot")
        curves = _learning_curves(history)
        panels = ([self._plot_confusion, self._plot_per_class] if self.confusion is not None
                  else [self._plot_metrics])
        panels += [lambda ax, name=name, series=series: _plot_curve(ax, name, series)
                   for name, series in curves.items()]
        n = len(self.names()) if self.confusion is not None else 0
        side = max(4.5, 1.0 + 0.6 * n)  # a confusion matrix needs room for its labels
        columns = min(2, len(panels))
        rows = -(-len(panels) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(side * columns, side * rows),
                                 squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.axis("off")
        for draw, ax in zip(panels, axes.flat):
            draw(ax)
        summary = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items())
        fig.suptitle(f"{summary}  ({self.num_examples} examples)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def _plot_confusion(self, ax) -> None:
        names = self.names()
        ax.imshow(self.confusion, cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("confusion matrix", fontsize=9)
        dark = self.confusion.max() / 2
        for (i, j), count in np.ndenumerate(self.confusion):
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8,
                    color="white" if count > dark else "black")

    def _plot_per_class(self, ax) -> None:
        table = self.per_class()
        names = list(table)
        positions = np.arange(len(names))
        for offset, score in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1")):
            ax.bar(positions + offset, [table[c][score] for c in names], width=0.27,
                   label=score)
        ax.set_xticks(positions, names, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("score")
        ax.set_title("per class", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    def _plot_metrics(self, ax) -> None:
        names = list(self.metrics)
        values = [self.metrics[k] for k in names]
        errors = None
        if self.intervals:
            low = [v - self.intervals.get(k, (v, v))[0] for k, v in zip(names, values)]
            high = [self.intervals.get(k, (v, v))[1] - v for k, v in zip(names, values)]
            errors = [low, high]
        ax.bar(range(len(names)), values, yerr=errors, capsize=4, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_ylabel("value")
        interval = f", {self.confidence:.0%} intervals" if self.intervals else ""
        ax.set_title(f"{self.task} metrics{interval}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)


def pyplot(caller: str):
    """matplotlib.pyplot on the file-only Agg backend, or a clear error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"{caller} needs matplotlib: `pip install matplotlib` "
                          "(or `pip install \".[plot]\"` in a clone of pretrainlib)") from None
    return plt


def _learning_curves(history) -> dict[str, dict[str, list[float]]]:
    """`{quantity: {"train": [...], "validation": [...]}}` from a History or its dict."""
    if history is None:
        return {}
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(
            f"`history` must be a keras.callbacks.History (what fit returns) or its "
            f"non-empty `.history` dict; got {type(history).__name__}.")
    curves: dict[str, dict[str, list[float]]] = {}
    for key, values in logs.items():
        name = key[4:] if key.startswith("val_") else key
        if name == "learning_rate":
            continue
        split = "validation" if key.startswith("val_") else "train"
        curves.setdefault(name, {})[split] = [float(v) for v in values]
    return curves


def _plot_curve(ax, name: str, series: dict[str, list[float]]) -> None:
    for split, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker=".", label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(f"learning curve: {name}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def comparison_table(rows: dict[str, dict[str, str | float]]) -> str:
    """A markdown table with one row per model: `{model: {column: value}}`."""
    columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    lines = ["| model | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, row in rows.items():
        cells = [f"{row[c]:.4f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
