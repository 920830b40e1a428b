#!/usr/bin/env python3
"""Renders the pages that quote measured figures from their JSON.

    python scripts/render_results.py           # write README.md, docs/results.md, docs/benchmarks.md, ...
    python scripts/render_results.py --figures # and redraw the figures they show from the JSON
    python scripts/render_results.py --check   # exit 1, naming the lines, where a page differs

Each page has a template in `docs/templates/` with the same name. In a template,
`{{ expression }}` is replaced by the value of a Python expression evaluated with the
helpers below (`J("name")` reads `docs/results/name.json`; `ms`, `pd`, `verdict`, ...
format spreads and paired differences by the library's one convention,
`pl.evaluation.statistics`). Outside `{{ }}`, code spans and code blocks, a template
may not type a decimal number: every measured figure comes from a JSON file, so a page
cannot drift from its data. `tests/test_rendered_docs.py` runs `--check`.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib.util
import json
import math
import pathlib
import re
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "docs" / "templates"
RESULTS = ROOT / "docs" / "results"
PAGES = {"README.md": ROOT / "README.md",
         "results.md": ROOT / "docs" / "results.md",
         "choosing_a_policy.md": ROOT / "docs" / "choosing_a_policy.md",
         "benchmarks.md": ROOT / "docs" / "benchmarks.md"}
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
# `{% statements %}` (alone on their lines) run first in the page's namespace and
# print nothing: they name the values a page quotes several times.
STATEMENTS = re.compile(r"^\{%(.*?)%\}[ \t]*\n", re.S | re.M)


def _load_statistics():
    # Imported by path: the statistics need only NumPy, and rendering should not pay
    # for importing TensorFlow through the package.
    path = ROOT / "pretrainlib" / "evaluation" / "statistics.py"
    spec = importlib.util.spec_from_file_location("_pl_statistics", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


stats = _load_statistics()


# --- reading the JSON --------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def J(name: str) -> dict:
    """`docs/results/<name>.json`, parsed."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} does not exist")
    return json.loads(path.read_text())


def _value(run: dict, metric: str) -> float:
    if metric in run:
        found = run[metric]
        return float(found["value"] if isinstance(found, dict) else found)
    if "metrics" in run and metric in run["metrics"]:
        return float(run["metrics"][metric])
    raise KeyError(f"no {metric!r} in run {sorted(run)}")


def runs(name: str, arm: str, budget=None) -> list[dict]:
    """The per-seed runs of `arm` (at `budget`) in `name`, in seed order, for every
    layout the example scripts write."""
    data = J(name)["runs"]
    if isinstance(data, list):  # StudyReport: [{"arm", "budget", "seed", ...}]
        found = [r for r in data if r["arm"] == arm and (budget is None or r["budget"] == budget)]
        return sorted(found, key=lambda r: r["seed"])
    if budget is not None:  # {budget: [{arm: run} per seed]}
        return [seed[arm] for seed in data[str(budget)]]
    return list(data[arm])  # {arm: [run per seed]}


def scores(name: str, arm: str, metric: str = "macro_f1", budget=None) -> list[float]:
    """One score per seed."""
    found = [_value(r, metric) for r in runs(name, arm, budget)]
    if not found:
        raise KeyError(f"{name}: no runs of {arm!r} at budget {budget!r}")
    return found


# --- formatting ----------------------------------------------------------------------

def n(x: float, digits: int = 3) -> str:
    """A number with `digits` decimals and thousands separators."""
    return f"{x:,.{digits}f}"


def s(x: float, digits: int = 3) -> str:
    """A signed number (`+0.012`, `−0.004`)."""
    return f"{x:+.{digits}f}".replace("-", "−")


def ms(values, digits: int = 3) -> str:
    """Mean ± sample std over seeds."""
    return stats.spread(values).format(digits)


def mean(values) -> float:
    return stats.spread(values).mean


def pd(a, b, digits: int = 3) -> str:
    """The paired difference a − b over seeds with its 95 % interval."""
    d = stats.paired_difference(a, b)
    if not d.has_interval:
        return f"{s(d.mean, digits)} (one seed)"
    return f"{s(d.mean, digits)} [{s(d.low, digits)}, {s(d.high, digits)}]"


def diff(a, b) -> stats.PairedDifference:
    return stats.paired_difference(a, b)


def per_seed(a, b=None, digits: int = 3) -> str:
    """Per-seed values (or differences a − b), comma separated."""
    values = a if b is None else [x - y for x, y in zip(a, b)]
    return ", ".join(s(v, digits) if b is not None else n(v, digits) for v in values)


def verdict(a, b, name_a: str, name_b: str) -> str:
    """What the paired interval allows: "beats", "level", or one seed."""
    return stats.paired_difference(a, b).verdict(name_a, name_b)


def ratio(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}×"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def mib(nbytes: float, digits: int = 2) -> str:
    return f"{nbytes / 2**20:.{digits}f} MiB"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def bold(text: str) -> str:
    return f"**{text}**"


def bold_best(cells: list[str], means: list[float]) -> list[str]:
    """Bolds the cell with the highest mean."""
    best = max(range(len(means)), key=means.__getitem__)
    return [bold(c) if i == best else c for i, c in enumerate(cells)]


# --- the studies' tables ---------------------------------------------------------------

def arms_table(name: str, arms: dict[str, str], metrics: dict[str, str],
               baseline: str | None = None, budget=None, digits: int = 3) -> str:
    """One row per arm: mean ± std of each metric, and (with `baseline`) the paired
    difference in the first metric against it, with its interval over seeds."""
    first = next(iter(metrics))
    header = ["model", *metrics.values()]
    if baseline:
        header.append(f"{metrics[first]} − {arms[baseline]} [95 % interval]")
    rows = []
    for arm, label in arms.items():
        row = [label] + [ms(scores(name, arm, m, budget), digits) for m in metrics]
        if baseline:
            row.append("" if arm == baseline else
                       pd(scores(name, arm, first, budget), scores(name, baseline, first, budget),
                          digits))
        rows.append(row)
    return table(header, rows)


def f1(name: str, arm: str, budget=None) -> list[float]:
    """Test macro-F1 per seed."""
    return scores(name, arm, "macro_f1", budget)


def acc(name: str, arm: str, budget=None) -> list[float]:
    """Test accuracy per seed."""
    return scores(name, arm, "accuracy", budget)


def cmd(name: str) -> str:
    """The command that wrote `name`, as a code block."""
    return f"```bash\n{J(name)['command']}\n```"


def measured(name: str) -> str:
    """`Measured <date> on <machine> (<wall time>).`"""
    data = J(name)
    wall = f", {minutes(data['wall_seconds'])}" if data.get("wall_seconds") else ""
    return f"Measured {data['date']} on a 2-core CPU, no GPU{wall}"


def measured_all(*names: str) -> str:
    """One provenance line for several runs, in the order of their commands."""
    parts = [f"{J(x)['date']} ({minutes(J(x)['wall_seconds'])})" for x in names]
    return f"Measured on a 2-core CPU, no GPU: {', '.join(parts)}, in the order of the commands"


def every(values_a, values_b) -> bool:
    """Whether a is ahead of b on every seed."""
    return all(x > y for x, y in zip(values_a, values_b))


def claim(a, b, name_a: str, name_b: str) -> str:
    """`"+0.06 [..] (a beats b)"`: the paired difference with what it allows, and
    whether a was ahead on every seed when the interval cannot say."""
    d = stats.paired_difference(a, b)
    text = d.verdict(name_a, name_b)
    if d.has_interval and d.low <= 0 <= d.high and every(a, b):
        text += f"; {name_a} was ahead on every seed"
    return f"{pd(a, b)} ({text})"


def count_examples() -> str:
    """How many notebooks and scripts `examples/` holds, in words."""
    folder = ROOT / "examples"
    notebooks = len(list(folder.glob("*.ipynb")))
    scripts = len([p for p in folder.glob("*.py") if not p.name.startswith("_")])
    return f"{notebooks} notebooks and {scripts} scripts"


def label_efficiency_table() -> str:
    name = "label_efficiency/label_efficiency"
    arms = ["pretrained", "scratch", "TF-IDF + logistic regression"]
    budgets = sorted({r["budget"] for r in J(name)["runs"]})
    rows = []
    for budget in budgets:
        values = [scores(name, arm, budget=budget) for arm in arms]
        cells = bold_best([ms(v) for v in values], [mean(v) for v in values])
        rows.append([f"{budget:,}", *cells, pd(values[0], values[1])])
    return table(["labels", "pretrained + fine-tuned", "same model from scratch",
                  "TF-IDF + logistic regression", "pretrained − scratch [95 % interval]"],
                 rows)


def label_efficiency_notes() -> str:
    name = "label_efficiency/label_efficiency"
    budgets = sorted({r["budget"] for r in J(name)["runs"]})
    wins = sum(p > max(s_, t) for b in budgets for p, s_, t in zip(
        f1(name, "pretrained", b), f1(name, "scratch", b),
        f1(name, "TF-IDF + logistic regression", b)))
    total = sum(len(f1(name, "pretrained", b)) for b in budgets)
    gains = ", ".join(s(diff(f1(name, "pretrained", b), f1(name, "scratch", b)).mean)
                      for b in budgets)
    lines = [f"- The pretrained arm scored highest on {wins} of the {total} (budget, seed) "
             "pairs, against both other arms.",
             f"- The gain over scratch shrinks as labels grow ({gains} at "
             f"{', '.join(f'{b:,}' for b in budgets)} labels)."]
    for small, large in zip(budgets, budgets[1:]):
        verdict_text = verdict(f1(name, "pretrained", small), f1(name, "scratch", large),
                               f"pretrained with {small:,} labels",
                               f"scratch with {large:,}")
        lines.append(f"- {small:,} labels with pretraining against {large:,} from scratch: "
                     f"{pd(f1(name, 'pretrained', small), f1(name, 'scratch', large))} "
                     f"(paired by seed; {verdict_text}).")
    tfidf = [verdict(f1(name, "scratch", b), f1(name, "TF-IDF + logistic regression", b),
                     "scratch", "TF-IDF") for b in budgets]
    lines.append("- Scratch against TF-IDF + logistic regression: " + "; ".join(
        f"{b:,} labels: {v}" for b, v in zip(budgets, tfidf)) + ".")
    lines.append("- Per-run numbers (accuracy too) are in "
                 "`docs/results/label_efficiency/label_efficiency.json`.")
    return "\n".join(lines)


def le_summary() -> str:
    """What the label-efficiency intervals allow, budget by budget."""
    name = "label_efficiency/label_efficiency"
    budgets = sorted({r["budget"] for r in J(name)["runs"]})
    parts = []
    for b in budgets:
        pre = f1(name, "pretrained", b)
        parts.append(f"{b:,} labels: "
                     f"{verdict(pre, f1(name, 'scratch', b), 'pretrained', 'scratch')}, "
                     f"{verdict(pre, f1(name, 'TF-IDF + logistic regression', b), 'pretrained', 'TF-IDF')}")
    return "; ".join(parts)


TEXT_METRICS = {"bleu": ("BLEU", 2), "sentence_bleu": ("sentence BLEU", 2),
                "rouge_l": ("ROUGE-L", 3), "perplexity": ("perplexity", 1)}


def definitions_table() -> str:
    name = "wordnet_definitions"
    arms = {"pretrained": "**pretrained** (causal LM) + fine-tuned",
            "scratch": "same architecture, fine-tuned from scratch",
            "nearest term (fine-tuning pairs)": "nearest term by TF-IDF, among the fine-tuning pairs",
            "nearest term (all training nouns)": "nearest term by TF-IDF, among all training nouns"}
    rows = []
    for arm, label in arms.items():
        row = [label]
        for metric, (_, digits) in TEXT_METRICS.items():
            found = runs(name, arm)
            row.append(ms(scores(name, arm, metric), digits) if metric in found[0] else "–")
        rows.append(row)
    return table([f"model ({len(runs(name, 'pretrained'))} seeds)",
                  *(label for label, _ in TEXT_METRICS.values())], rows)


def _with_interval(run: dict, metric: str, digits: int) -> str:
    cell = run[metric]
    if isinstance(cell, dict) and cell.get("interval"):
        low, high = cell["interval"]
        return f"{cell['value']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{_value(run, metric):.{digits}f}"


def lora_definitions_table() -> str:
    rows = []
    for name, arm, label in (("wordnet_definitions_lora", "pretrained + LoRA",
                              "pretrained + LoRA (rank 8)"),
                             ("wordnet_definitions", "pretrained",
                              "pretrained + full fine-tuning (the table above, seed 0)")):
        run = runs(name, arm)[0]
        rows.append([label] + [_with_interval(run, m, d) for m, (_, d) in TEXT_METRICS.items()])
    return table(["seed 0 (95 % bootstrap intervals over test nouns)",
                  *(label for label, _ in TEXT_METRICS.values())], rows)


def definition_examples() -> str:
    examples = J("wordnet_definitions")["examples"]
    keys = ["term", "reference", "pretrained", "scratch", "nearest term (all training nouns)"]
    header = ["noun", "real definition", "pretrained", "scratch", "nearest term (all nouns)"]
    return table(header, [[e[k].replace("|", "/") for k in keys] for e in examples])


def compression_table(name: str) -> str:
    float_f1 = scores(name, "float32", "macro_f1")
    float_size = mean(scores(name, "float32", "size_bytes"))
    rows = []
    for arm in J(name)["runs"]:
        f1s = scores(name, arm, "macro_f1")
        size = mean(scores(name, arm, "size_bytes"))
        latency = {k: mean([r["latency_ms"][k] for r in runs(name, arm)]) for k in ("1", "32")}
        rows.append([arm, ms(f1s), "" if arm == "float32" else pd(f1s, float_f1),
                     mib(size), ratio(float_size / size),
                     mib(mean(scores(name, arm, "gzip_bytes"))),
                     f"{latency['1']:.2f} ms", f"{latency['32']:.2f} ms"])
    return table(["arm", "macro-F1", "− float32 [95 % interval]", "weights", "smaller",
                  "gzipped", "batch 1", "batch 32"], rows)


def compression_notes(name: str) -> str:
    base = scores(name, "float32", "macro_f1")
    lines = []
    for arm in J(name)["runs"]:
        if arm == "float32":
            continue
        lines.append(f"`{arm}` {verdict(scores(name, arm, 'macro_f1'), base, arm, 'float32')}"
                     .replace(f"`{arm}` {arm} and float32 are level", f"`{arm}`: level with float32")
                     .replace(f"`{arm}` float32 beats {arm}", f"`{arm}`: below float32")
                     .replace(f"`{arm}` {arm} beats float32", f"`{arm}`: above float32"))
    latency = {arm: mean([r["latency_ms"]["32"] for r in runs(name, arm)]) for arm in J(name)["runs"]}
    fastest = min(latency, key=latency.get)
    return ("- Macro-F1 against float32, by the paired intervals over 3 seeds: "
            + "; ".join(lines) + ".\n"
            f"- Latency at batch 32 on this CPU: float32 {latency['float32']:.1f} ms, the "
            f"fastest arm `{fastest}` {latency[fastest]:.1f} ms; quantized arms: "
            + ", ".join(f"`{a}` {latency[a]:.1f} ms" for a in ("int8", "int4") if a in latency)
            + ". Measure latency on the hardware you serve on (`pl.compress.measure`).")


def transfer_table(studies: dict[str, str]) -> str:
    rows = []
    for name, label in studies.items():
        pre, scr = acc(name, "pretrained"), acc(name, "scratch")
        rows.append([label, ms(pre), ms(scr), pd(pre, scr), per_seed(pre, scr)])
    return table(["study (3 seeds)", "pretrained, test accuracy", "scratch",
                  "pretrained − scratch [95 % interval]", "per seed"], rows)


def simclr_table() -> str:
    arms = [("fashion_mnist_simclr_frozen", "pretrained, frozen",
             "SimCLR, then a linear head on the frozen features (`FeatureExtraction`)"),
            ("fashion_mnist_simclr", "pretrained", "SimCLR, then `FreezeThenUnfreeze(5)`"),
            ("fashion_mnist_simclr", "scratch", "scratch (`FullFineTune`, its own rate)")]
    scratch = acc("fashion_mnist_simclr", "scratch")
    rows = [[label, ms(acc(name, arm)), ms(f1(name, arm)),
             "" if arm == "scratch" else pd(acc(name, arm), scratch)]
            for name, arm, label in arms]
    return table(["arm (10 labels per class, 3 seeds)", "test accuracy", "macro-F1",
                  "accuracy − scratch [95 % interval]"], rows)


def probes_table() -> str:
    sources = [("fashion_mnist_simclr", "pretrained", "SimCLR, 15 epochs"),
               ("fashion_mnist_byol", "pretrained", "BYOL (`target_decay=0.99`), 12 epochs"),
               ("fashion_mnist_probes_masked", "pretrained",
                "masked image modeling (`Autoencoder`, mask 0.5, 4×4 patches), 10 epochs"),
               ("fashion_mnist_simclr", "random init", "random initialization")]
    rows = [[label, n(J(name)["probes"][arm]["linear_probe"]["accuracy"]),
             n(J(name)["probes"][arm]["knn"]["accuracy"]),
             "each command above scores one" if arm == "random init" else f"`{J(name)['command']}`"]
            for name, arm, label in sources]
    return table(["backbone (`ConvNet(32, 64, 128)`)", "linear probe", "kNN (k = 20)", "command"],
                 rows)


def selfmatch_table() -> str:
    name = "selfmatch_images"
    arms = {"recipe": "scratch: `ConvNet`, `FullFineTune`, labels only",
            "+ consistency": "scratch + FixMatch (`pl.semi.Consistency()`)",
            "pretrained, frozen": "SimCLR, linear head on frozen features",
            "pretrained + consistency": "**SimCLR, then FixMatch** (`FreezeThenUnfreeze(1)`)"}
    base, fixmatch = acc(name, "recipe", 100), acc(name, "+ consistency", 100)
    rows = []
    for arm, label in arms.items():
        a = acc(name, arm, 100)
        rows.append([label, ms(a), ms(f1(name, arm, 100)),
                     "" if arm == "recipe" else pd(a, base),
                     "" if arm in ("recipe", "+ consistency") else pd(a, fixmatch)])
    return table(["arm (10 labels per class, 3 seeds)", "test accuracy", "macro-F1",
                  "accuracy − scratch [95 % interval]",
                  "− scratch + FixMatch [95 % interval]"], rows)


def lr_finder_table() -> str:
    rows = []
    for task, name in (("text", "lr_finder_text"), ("images", "lr_finder_images")):
        data = J(name)
        for stage, summary in data["summary"].items():
            seeds = [r for r in data["seeds"] if f"stage {r['stage']}" == stage]
            label = ("head alone" if task == "text" and stage == "stage 0" else
                     "last (default)" if task == "text" else "the only one")
            ranks = ", ".join(str(r["nearest_rank_by_val"]) for r in seeds)
            rows.append([task, label, ", ".join(f"{r['suggestion']:.1e}" for r in seeds),
                         f"{summary['in_best_two']} of {summary['seeds']} (ranks {ranks})",
                         n(summary["test_at_suggestion"]), n(summary["test_at_grid_best_by_val"]),
                         f"{summary['finder_share_of_a_run']:.0%}"])
    return table(["task", "stage tested", "suggestions",
                  "nearest grid rate in the best two (by validation)",
                  "test macro-F1 at the suggestion", "at the grid's best", "finder time / one run"],
                 rows)


def semi_text_table() -> str:
    rows = []
    for budget in (50, 200):
        for name, arm, label in (
                ("semi_supervised_text", "recipe", "recipe"),
                ("semi_supervised_text", "+ pseudo-label", "+ pseudo-label"),
                ("semi_supervised_text", "+ consistency", "+ consistency"),
                ("semi_supervised_text_prompts", "+ self-training", "+ self-training"),
                ("semi_supervised_text_prompts", "zero-shot prompt",
                 "zero-shot prompt (template picked on the labels)"),
                ("semi_supervised_text_calibrated", "zero-shot prompt, calibrated",
                 "zero-shot prompt, calibrated on the pool"),
                ("semi_supervised_text_prompts", "+ prompt", "+ prompt (PET-style fine-tuning)"),
                ("semi_supervised_text_calibrated", "+ calibrated prompt", "+ calibrated prompt"),
                ("semi_supervised_text_calibrated", "+ prompt + self-training",
                 "+ prompt + self-training")):
            values = f1(name, arm, budget)
            base = f1(name, "recipe", budget)
            rows.append([f"{budget:,}", label, ms(values),
                         "" if arm == "recipe" else pd(values, base)])
    reference = [r["macro_f1"] for r in J("semi_supervised_text")["scratch_reference"]]
    rows.append(["2,000", "same architecture from scratch", ms(reference), ""])
    return table(["labels", "arm (3 seeds)", "test macro-F1",
                  "− recipe, same run [95 % interval]"], rows)


def pretrain12_table() -> str:
    short = {"zero-shot prompt": "semi_supervised_text_prompts",
             "zero-shot prompt, calibrated": "semi_supervised_text_calibrated",
             "recipe": "semi_supervised_text_prompts",
             "+ self-training": "semi_supervised_text_prompts",
             "+ prompt": "semi_supervised_text_prompts",
             "+ calibrated prompt": "semi_supervised_text_calibrated",
             "+ prompt + self-training": "semi_supervised_text_calibrated"}
    long = {arm: ("semi_supervised_text_pretrain12_calibrated" if arm == "+ calibrated prompt"
                  else "semi_supervised_text_pretrain12") for arm in short}
    rows = []
    for budget in (50, 200):
        for arm in short:
            if arm.startswith("zero-shot") and budget != 50:
                continue
            a, b = f1(long[arm], arm, budget), f1(short[arm], arm, budget)
            label = "none (template: 50)" if arm.startswith("zero-shot") else f"{budget:,}"
            rows.append([label, arm, ms(b), ms(a), pd(a, b)])
    return table(["labels", "arm (3 seeds)", "1.7 passes", "12 passes",
                  "12 − 1.7 passes [95 % interval]"], rows)


def semi_images_table() -> str:
    name = "semi_supervised_images"
    base = f1(name, "recipe", 100)
    rows = [[label, ms(acc(name, arm, 100)), ms(f1(name, arm, 100)),
             "" if arm == "recipe" else pd(f1(name, arm, 100), base)]
            for arm, label in (("recipe", "ConvNet, labels only"),
                               ("+ consistency", "**+ consistency (FixMatch)**"))]
    return table(["arm (3 seeds)", "test accuracy", "test macro-F1",
                  "macro-F1 − labels only [95 % interval]"], rows)


def median(values) -> float:
    return float(statistics.median(values))


def paired_ratios(a: list[float], b: list[float]) -> list[float]:
    """Round-by-round ratios a / b (arms alternated within each round)."""
    return [x / y for x, y in zip(a, b)]


def ratio_summary(ratios: list[float], digits: int = 2) -> str:
    """`"1.02× (median of 7 paired rounds; 0.84–1.18×)"`."""
    return (f"{median(ratios):.{digits}f}× (median of {len(ratios)} paired rounds; "
            f"{min(ratios):.{digits}f}–{max(ratios):.{digits}f}×)")


def span(values, digits: int = 1) -> str:
    """`"5.1–5.7×"`, or one figure when they agree at these digits."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{low}×" if low == high else f"{low}–{high}×"


def cs(values, digits: int = 3) -> str:
    """Comma-separated values."""
    return ", ".join(f"{v:,.{digits}f}" for v in values)


# --- the benchmarks' tables -------------------------------------------------------------

def freezing_table() -> str:
    data = J("benchmark_freezing")
    rows = []
    for key, task in (("feature_cache", "WordNet"), ("feature_cache_fashion_mnist", "Fashion-MNIST")):
        runs_ = data[key]["runs"]
        fit = paired_ratios([r["seconds"] for r in runs_["uncached"]],
                            [r["seconds"] for r in runs_["cached"]])
        epoch = paired_ratios([r["epoch_seconds"] for r in runs_["uncached"]],
                              [r["epoch_seconds"] for r in runs_["cached"]])
        rows.append([task,
                     f"{cs([r['seconds'] for r in runs_['uncached']], 1)} → "
                     f"{cs([r['seconds'] for r in runs_['cached']], 1)}",
                     span(fit, 1),
                     f"{cs([r['epoch_seconds'] for r in runs_['uncached']], 2)} → "
                     f"{cs([r['epoch_seconds'] for r in runs_['cached']], 3)}",
                     span(epoch, 0)])
    return table(["task", "whole `fit`, seconds per round, uncached → cached",
                  "paired ratios", "one head-training epoch (median after the first), seconds",
                  "paired ratios"], rows)


def memory_table() -> str:
    memory = J("benchmark_freezing")["memory"]
    full = memory["FullFineTune()"]["optimizer_state_bytes"]
    rows = []
    for policy, m in memory.items():
        trainable = f"{m['trainable_params']:,}"
        if m["total_params"] != memory["FullFineTune()"]["total_params"] or policy == "FullFineTune()":
            trainable += f" of {m['total_params']:,}"
        share = full / m["optimizer_state_bytes"]
        rows.append([f"`{policy}`", trainable, f"{m['optimizer_state_bytes'] / 1024:,.1f} KiB",
                     "1×" if policy == "FullFineTune()" else f"1/{share:,.0f}"])
    return table(["policy", "trainable parameters", "optimizer state", "vs full fine-tuning"],
                 rows)


def packing_table() -> str:
    data = J("benchmark_packing")
    length = data["config"]["length"]
    labels = {"padded": "padded, one gloss each", "packed": "packed",
              "packed, attention reset": "packed, attention reset"}
    rows = []
    for mode, label in labels.items():
        m = data["modes"][mode]
        rates = [r["steps_per_second"] for r in data["runs"][mode]]
        rows.append([label, f"{m['real_tokens_per_row']:.1f} of {length} "
                            f"({m['real_tokens_per_row'] / length:.0%})",
                     cs(rates), f"{median(rates) * m['real_tokens_per_row'] * data['config']['batch']:,.0f}"])
    return table(["rows", "real (non-padding) tokens per row", "steps/s, per round",
                  "real tokens/s at the median step rate"], rows)


def mlm_table() -> str:
    rows_ = J("benchmark_throughput")["mlm"]["rows"]
    labels = {"keras_hub": "KerasHub `BertMaskedLM`, one gloss a row",
              "pretrainlib": "pretrainlib, the same batches",
              "pretrainlib packed": "pretrainlib, packed rows (`pack=True`)"}
    return table(["arm", "steps/s, per round", "real tokens per row"],
                 [[label, cs(rows_[arm]["runs"]), f"{rows_[arm]['real_tokens_per_row']:.1f} of 128"]
                  for arm, label in labels.items()])


def precision_table() -> str:
    data = J("benchmark_precision_cpu")["precision"]
    return table(["arm", "steps/s, per round"],
                 [[f"`{arm}`" if arm == "mixed_bfloat16" else arm, cs(data[arm]["runs"])]
                  for arm in data])


def epoch_orders_table() -> str:
    speeds = J("benchmark_epoch_orders")["batches_per_second"]
    rows = []
    for kind, label in (("text", "text, labeled"), ("images", "images"),
                        ("images + augment", "images + `RandomTranslation`")):
        ours = speeds[f"{kind}: pl.data.{'text' if kind == 'text' else 'image'}_dataset"]
        theirs = speeds[f"{kind}: hand-written shuffle pipeline"]
        rows.append([label, f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}×"])
    return table(["pipeline", "`pl.data` batches/s", "hand-written batches/s", "ratio"], rows)


def resume_table() -> str:
    t = J("benchmark_epoch_orders")["seconds_to_first_resumed_batch"]
    return table(["resume at", "`source.stream(epoch, batch)`", "`dataset.repeat().skip(batch)`"],
                 [[f"batch {b}", f"{t[f'stream at batch {b}']:.3f}",
                   f"{t[f'repeat().skip at batch {b}']:.3f}"] for b in (10, 900)])


def your_data_table() -> str:
    y = J("benchmark_your_data")
    resume = y["resume_seconds_to_first_step"]
    loss_first, loss_mean = y["mlm_loss_first_batch_and_run_mean"]
    rows = [
        ["index the corpus (every line checked), first time / from the cache",
         f"{y['index_seconds_first']:.1f} s / {y['index_seconds_cached']:.2f} s"],
        ["train an 8,000-token WordPiece tokenizer on 1,000,000 texts spread over the corpus",
         f"{y['tokenizer_seconds']:.1f} s"],
        ["co-occurrence embeddings (128 dims) from the same sample",
         f"{y['cooccurrence_seconds']:.1f} s"],
        [f"{y['mlm_steps']:,} masked-LM steps (TextEncoder 2 × 128, batch 32 × 128 tokens, "
         "packed as they stream, checkpoint every 10 steps)",
         f"{y['mlm_seconds']:.0f} s, {y['train_steps_per_second']:.2f} steps/s; loss "
         f"{loss_first:.2f} at the first batch, {loss_mean:.2f} mean over the run"],
        ["the packed input pipeline alone",
         f"{y['pipeline_batches_per_second']:,.0f} batches/s: {y['pipeline_over_train']:.0f}× "
         "the train step rate"],
        ["resume from the checkpoint at step 10 / at step 900: `fit` called to first step "
         "trained (median of 3, alternated)",
         f"{resume['at step 10']:.2f} s / {resume['at step 900']:.2f} s"],
        ["resident memory after indexing / the statistics / the training / peak of the run",
         f"{y['rss_gb_after_index']:.2f} / {y['rss_gb_after_statistics']:.2f} / "
         f"{y['rss_gb_after_training']:.2f} / {y['rss_gb_peak']:.2f} GiB (the peak includes "
         "the resume measurements, which build six more models in the same process)"],
    ]
    return table(["step", "figure"], rows)


def your_data_pipelines_table() -> str:
    e = J("benchmark_your_data")["examples_per_second"]
    pairs = [("the 20 text files, 128-token rows, batch 32",
              "text files: pl.data.text_dataset", "`text_dataset(files)`",
              "text files: TextLineDataset + shuffle + tokenize",
              "`TextLineDataset` + `shuffle(16384)` + `batch` + tokenize"),
             ("20,000 one-document files",
              "one file per text: pl.data.text_dataset(document='file')",
              "`text_dataset(folder, document=\"file\")`",
              "one file per text: keras text_dataset_from_directory",
              "`keras.utils.text_dataset_from_directory` + tokenize"),
             ("25,000 PNGs, decode + `RandomTranslation`, batch 64",
              "image folder: pl.data.image_folder + augment", "`image_folder`",
              "image folder: keras image_dataset_from_directory + augment",
              "`keras.utils.image_dataset_from_directory` + the same augmentation")]
    return table(["data", "pretrainlib", "the alternative", "ratio"],
                 [[data, f"{ours_label}: {e[ours]:,.0f}", f"{theirs_label}: {e[theirs]:,.0f}",
                   f"{e[ours] / e[theirs]:.2f}×"]
                  for data, ours, ours_label, theirs, theirs_label in pairs])


def lora_int8_table() -> str:
    data = J("benchmark_lora_int8")
    med = {arm: {k: median([r[k] for r in data["rounds"][arm]]) for k in data["rounds"][arm][0]
                 if k != "loss_first_last"} for arm in ("float32", "int8")}
    speed = paired_ratios([r["steps_per_second"] for r in data["rounds"]["int8"]],
                          [r["steps_per_second"] for r in data["rounds"]["float32"]])

    def row(label, f, i, unit, digits=1, smaller=True):
        rel = f / i
        return [label, f"{f:,.{digits}f}{unit}", f"{i:,.{digits}f}{unit}",
                f"{rel:.1f}× smaller" if smaller and rel > 1.05 else "same" if abs(rel - 1) < 0.05
                else f"{1 / rel:.2f}×"]

    base = data["base_file_mib"]
    rows = [row("base file (`.keras`)", base["float32"], base["int8"], " MiB"),
            row("the model's weights in memory", med["float32"]["weights_mib"],
                med["int8"]["weights_mib"], " MiB"),
            row("resident memory loading the base adds", med["float32"]["rss_to_load_the_base_mib"],
                med["int8"]["rss_to_load_the_base_mib"], " MiB"),
            row("weights that train (LoRA + head)", med["float32"]["trainable_mib"],
                med["int8"]["trainable_mib"], " MiB", 2),
            row("peak resident memory of the run, above the imports",
                med["float32"]["peak_rss_above_imports_mib"], med["int8"]["peak_rss_above_imports_mib"],
                " MiB", 0),
            ["fine-tuning steps per second", f"{med['float32']['steps_per_second']:.2f}",
             f"{med['int8']['steps_per_second']:.2f}", ratio_summary(speed)],
            ["test macro-F1 (1,000 glosses, one seed)", f"{med['float32']['macro_f1']:.3f}",
             f"{med['int8']['macro_f1']:.3f}", "one seed"]]
    return table(["", "float32 base", "int8 base", "int8 against float32"], rows)


def contrastive_table() -> str:
    rows_ = J("benchmark_contrastive")["rows"]
    return table(["objective", "images / s, per round", "MFU (best round)"],
                 [[arm.upper() if arm == "byol" else "SimCLR", cs(r["runs"], 1), n(r["mfu"], 2)]
                  for arm, r in rows_.items()])


def generation_table() -> str:
    r = J("benchmark_generation")["runs"]
    labels = {"keras_hub CausalLM.generate": "KerasHub `CausalLM.generate`",
              "pretrainlib cached": "`Generator`, cached",
              "keras_hub, stop token": "KerasHub, stop token",
              "pretrainlib cached, stop token": "`Generator`, cached, stop token",
              "pretrainlib cached, XLA": "`Generator`, cached, XLA",
              "pretrainlib uncached": "`Generator`, uncached"}
    return table(["arm", "tokens / s (median of rounds)", "range over rounds"],
                 [[label, f"{median(r[arm]):,.0f}", f"{min(r[arm]):,.0f}–{max(r[arm]):,.0f}"]
                  for arm, label in labels.items()])


def policies_table() -> str:
    name, default = "policies", "FreezeThenUnfreeze(1)"
    order = sorted(J(name)["runs"], key=lambda p: -mean(f1(name, p)))
    rows = []
    for policy in order:
        found = runs(name, policy)
        label = f"`{policy}`" + (" (the default)" if policy == default else
                                 " (linear probe, cached features)"
                                 if policy == "FeatureExtraction()" else "")
        rows.append([label, ms(f1(name, policy)), ms(acc(name, policy)),
                     f"{found[0]['trainable_params_last_stage']:,}",
                     n(mean([r["seconds"] for r in found]), 0),
                     "" if policy == default else pd(f1(name, policy), f1(name, default))])
    return table(["policy", "test macro-F1", "test accuracy", "trainable params (last stage)",
                  "fine-tuning s / seed", "− the default [95 % interval]"], rows)


NAMESPACE = {name: value for name, value in dict(globals()).items()
             if callable(value) and not name.startswith("_") and name not in
             {"main", "render", "check_template", "annotations"}}
NAMESPACE.update(math=math, stats=stats)


# --- rendering -----------------------------------------------------------------------

HEADER = "<!-- Rendered by scripts/render_results.py from docs/templates/{name}: edit the template. -->\n"


def render(name: str) -> str:
    """The page `name` rendered from its template."""
    template = (TEMPLATES / name).read_text()
    problems = check_template(template)
    if problems:
        raise ValueError(f"docs/templates/{name}: typed decimal figures (put them in a JSON "
                         f"and a {{{{ }}}} placeholder):\n" + "\n".join(problems))

    namespace = dict(NAMESPACE)
    for match in STATEMENTS.finditer(template):
        code = "\n".join(line.strip() for line in match.group(1).strip().splitlines())
        try:
            exec(code, namespace)  # noqa: S102 - our own templates
        except Exception as error:
            line = template[:match.start()].count("\n") + 1
            raise ValueError(f"docs/templates/{name}:{line}: {{% ... %}}: "
                             f"{type(error).__name__}: {error}") from error
    template = STATEMENTS.sub("", template)

    def replace(match: re.Match) -> str:
        expression = match.group(1).strip()
        try:
            return str(eval(expression, namespace))  # noqa: S307 - our own templates
        except Exception as error:  # name the placeholder that failed
            line = template[:match.start()].count("\n") + 1
            raise ValueError(f"docs/templates/{name}:{line}: {{{{ {expression} }}}}: "
                             f"{type(error).__name__}: {error}") from error

    return HEADER.format(name=name) + PLACEHOLDER.sub(replace, template)


DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
# Decimal numbers in prose that are names, not measured figures.
NOT_FIGURES = re.compile(r"Python 3\.1\d–3\.1\d|WordNet 3\.0|Keras 3\.\d+|TensorFlow 2\.\d+")


def check_template(template: str) -> list[str]:
    """Lines that type a decimal figure outside placeholders and code."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731 - keeps line numbers
    prose = STATEMENTS.sub(blank, template)
    prose = PLACEHOLDER.sub(blank, prose)
    prose = re.sub(r"^```.*?^```", blank, prose, flags=re.S | re.M)  # code blocks
    prose = re.sub(r"`[^`]*`", blank, prose)  # code spans, across line breaks too
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    problems = []
    for number, line in enumerate(prose.splitlines(), 1):
        if line.startswith("    "):  # an indented code block
            continue
        if DECIMAL.search(NOT_FIGURES.sub("", line)):
            problems.append(f"  line {number}: {template.splitlines()[number - 1].strip()[:100]}")
    return problems


def figures() -> list[pathlib.Path]:
    """Redraws the figures the pages show from their JSON, with the example scripts' own
    plotting code (needs matplotlib, and imports TensorFlow through the library)."""
    sys.path.insert(0, str(ROOT / "examples"))
    sys.path.insert(0, str(ROOT))
    import compression_study  # noqa: E402 - an example script
    import lr_finder_study  # noqa: E402
    import numpy as np
    import pretrainlib as pl

    written = []
    for name, title in (("compression_study", "WordNet supersenses, 200 labels"),
                        ("compression_study_images", "Fashion-MNIST, ConvNet, "
                         f"{J('compression_study_images')['config']['labels']:,} labels")):
        summary = {arm: {"macro_f1": stats.spread(scores(name, arm, "macro_f1")).to_dict(),
                         "gzip_bytes": stats.spread(scores(name, arm, "gzip_bytes")).to_dict()}
                   for arm in J(name)["runs"]}
        path = RESULTS / f"{name}.png"
        compression_study.plot(summary, path, title)
        written.append(path)
    study = J("label_efficiency/label_efficiency")
    path = RESULTS / "label_efficiency" / "label_efficiency.png"
    pl.evaluation.StudyReport(study["runs"], study["metrics"]).plot(
        str(path), metric="macro_f1", title="WordNet supersenses: test macro-F1 vs labels")
    written.append(path)
    for name in ("lr_finder_text", "lr_finder_images"):
        data = J(name)
        args = argparse.Namespace(**data["config"])
        for seed in (r for r in data["seeds"] if r["seed"] == 0):
            losses = np.asarray(seed["finder_losses"])
            found = pl.tune.LearningRateFinding(np.asarray(seed["finder_rates"]), losses, losses,
                                                seed["suggestion"], seed["finder_seconds"])
            path = RESULTS / f"{name}_stage{seed['stage']}.png"
            found.plot(path, title=lr_finder_study.plot_title(args, seed["stage"]),
                       chosen=lr_finder_study.best_by_validation(seed["grid"]))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 where a page is not what its template gives")
    parser.add_argument("--figures", action="store_true",
                        help="also redraw the figures from their JSON (needs matplotlib)")
    parser.add_argument("pages", nargs="*", help=f"which pages (default: all of {sorted(PAGES)})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.pages if name not in PAGES]
    if unknown:
        parser.error(f"unknown pages {unknown}; choose from {sorted(PAGES)}")
    args.pages = args.pages or sorted(PAGES)
    stale = []
    for name in args.pages:
        page, rendered = PAGES[name], render(name)
        current = page.read_text() if page.exists() else ""
        if current == rendered:
            continue
        if args.check:
            shown = page.relative_to(ROOT) if ROOT in page.parents else page
            delta = difflib.unified_diff(current.splitlines(), rendered.splitlines(),
                                         f"{shown} (as committed)", f"{shown} (rendered)",
                                         lineterm="", n=0)
            stale.append("\n".join(list(delta)[:40]))
        else:
            page.write_text(rendered)
            print(f"wrote {page}")
    if args.figures and not args.check:
        for path in figures():
            print(f"wrote {path}")
    if stale:
        print("pages that differ from their template and JSON (run "
              "`python scripts/render_results.py`; edit docs/templates/, not the page):\n\n"
              + "\n\n".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
