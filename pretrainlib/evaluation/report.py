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

    Example:
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

    def plot(self, path: str) -> str:
        """Writes the confusion matrix as a PNG to `path` (needs matplotlib);
        classification only for now."""
        if self.confusion is None:
            raise ValueError(
                f"Report.plot draws a confusion matrix; a {self.task} report has none. Use "
                "report.metrics or report.to_markdown().")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "Report.plot needs matplotlib: pip install 'pretrainlib[plot]'"
            ) from None
        names = self.names()
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
        ax.imshow(self.confusion, cmap="Blues")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for (i, j), count in np.ndenumerate(self.confusion):
            ax.text(j, i, int(count), ha="center", va="center", fontsize=8)
        title = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items())
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


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
