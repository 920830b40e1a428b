"""Does the learning-rate finder pick a rate a grid search would? Over seeds.

    python examples/lr_finder_study.py --task text --seeds 3 \\
        --out docs/results/lr_finder_text.json
    python examples/lr_finder_study.py --task images --seeds 3 \\
        --out docs/results/lr_finder_images.json

The recipes are the compression study's (`compression_study.py`): `--task text`,
the WordNet classifier (pretrained encoder, 200 labels, FreezeThenUnfreeze, early
stopping on validation macro-F1); `--task images`, the library's ConvNet from
scratch on 2,000 Fashion-MNIST labels. For each seed:

- `pl.tune.find_learning_rate` on the compiled model and the training labels
  (default settings: 100 steps from 1e-7 to 10, the valley rule), timed, in each
  policy stage `--stages` names: the stage a fit starts in (the head alone under
  FreezeThenUnfreeze, on cached features) and the last (everything that trains);
- the same recipe fine-tuned at each rate of a 5-point grid (`--grid`), timed, and
  at the finder's suggestion, each scored on validation and on the test split.

It reports where the suggestion falls in the grid (the grid point nearest to it on
a log scale, and whether that point is among the two best by validation
macro-F1), the test macro-F1 at the suggestion against the grid's best, and the
finder's time as a share of one fine-tuning run.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import keras
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import compression_study as recipes  # noqa: E402 -- the two tasks and their recipes
import wordnet_demo as demo  # noqa: E402

import pretrainlib as pl  # noqa: E402


def builder(task, args):
    """A function building the untrained recipe model for `task`."""
    if args.task == "text":
        return lambda: pl.FineTuner(
            pl.backbones.clone(task.encoder), pl.heads.Classifier(len(task.wn.class_names)),
            policy=pl.freezing.FreezeThenUnfreeze(args.freeze_epochs))
    return lambda: pl.FineTuner(pl.backbones.ConvNet(widths=tuple(args.widths)),
                                pl.heads.Classifier(10), policy=pl.freezing.FullFineTune())


def stages_to_test(model, args) -> list:
    """The policy stages `--stages` names, as indexes: "next" is the stage a fit
    starts in (0), "last" the one where everything the policy trains trains."""
    last = model.policy.num_stages(list(model.layer_groups)) - 1
    return sorted({0 if name == "next" else last if name == "last" else int(name)
                   for name in args.stages})


def scored(build, train, val, test, args, lr, seed) -> dict:
    start = time.perf_counter()
    score, _, model = demo.fine_tune(build, train, val, args, [lr], seed)
    seconds = time.perf_counter() - start
    report = pl.Evaluator(metrics=["macro_f1"]).evaluate(model, test)
    return {"learning_rate": lr, "val_macro_f1": float(score),
            "test_macro_f1": float(report.metrics["macro_f1"]), "seconds": seconds}


def run(args) -> dict:
    start = time.time()
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    task = (recipes.TextTask if args.task == "text" else recipes.ImageTask)(args)
    build = builder(task, args)
    seeds = []
    for seed in range(args.seeds):
        train, val = task.data(seed)
        grid = None
        for stage in stages_to_test(build(), args):
            keras.utils.set_random_seed(seed)
            model = build()
            model.compile()
            found = pl.tune.find_learning_rate(model, train, stage=stage)
            demo.log(f"seed {seed}, stage {stage}: {found}")
            if grid is None:  # one grid per seed, shared by the stages tested
                grid = [scored(build, train, val, task.test, args, lr, seed)
                        for lr in args.grid]
                for point in grid:
                    demo.log(f"  lr={point['learning_rate']:g}: val "
                             f"{point['val_macro_f1']:.3f}, test {point['test_macro_f1']:.3f},"
                             f" {point['seconds']:.0f} s")
            at_suggestion = scored(build, train, val, task.test, args, found.suggestion, seed)
            nearest = int(np.argmin(np.abs(np.log(np.array(args.grid) / found.suggestion))))
            ranks = np.argsort([-p["val_macro_f1"] for p in grid])
            seeds.append({
                "seed": seed, "stage": stage, "suggestion": found.suggestion,
                "finder_seconds": found.seconds,
                "finder_rates": found.learning_rates.tolist(),
                "finder_losses": found.losses.tolist(), "grid": grid,
                "at_suggestion": at_suggestion, "nearest_grid_point": nearest,
                "nearest_rank_by_val": int(np.where(ranks == nearest)[0][0]) + 1,
                "finder_share_of_a_run": found.seconds / float(np.mean([
                    p["seconds"] for p in grid]))})
            demo.log(f"  at the suggestion: test {at_suggestion['test_macro_f1']:.3f}; "
                     f"nearest grid point ranks {seeds[-1]['nearest_rank_by_val']} by "
                     "validation")
            if seed == 0 and args.plot:
                out = pathlib.Path(args.out)
                found.plot(out.with_name(f"{out.stem}_stage{stage}.png"),
                           title=plot_title(args, stage), chosen=best_by_validation(grid))
    result = {"config": vars(args), "seeds": seeds, "summary": summarize(seeds),
              "wall_seconds": time.time() - start, "date": time.strftime("%Y-%m-%d")}
    out = pathlib.Path(args.out)
    out.write_text(json.dumps(result, indent=1))
    print(table(seeds, args))
    return result


def plot_title(args, stage: int) -> str:
    """The range-test figure's title: task, stage and seed."""
    what = "WordNet recipe" if args.task == "text" else "Fashion-MNIST ConvNet"
    return f"Range test, {what}, stage {stage}, seed 0"


def best_by_validation(grid: list) -> float:
    """The grid's rate with the best validation macro-F1 (the one a grid search picks)."""
    return max(grid, key=lambda point: point["val_macro_f1"])["learning_rate"]


def summarize(seeds: list) -> dict:
    summary = {}
    for stage in sorted({s["stage"] for s in seeds}):
        runs = [s for s in seeds if s["stage"] == stage]
        best = [max(s["grid"], key=lambda p: p["val_macro_f1"])["test_macro_f1"] for s in runs]
        summary[f"stage {stage}"] = {
            "in_best_two": sum(s["nearest_rank_by_val"] <= 2 for s in runs),
            "seeds": len(runs),
            "test_at_suggestion": float(np.mean([s["at_suggestion"]["test_macro_f1"]
                                                 for s in runs])),
            "test_at_grid_best_by_val": float(np.mean(best)),
            "finder_share_of_a_run": float(np.median([s["finder_share_of_a_run"]
                                                      for s in runs]))}
    return summary


def table(seeds: list, args) -> str:
    rows = ["| seed | stage tested | suggestion | nearest grid rate | its rank (val) | "
            "test at suggestion | test at grid best | finder time / one run |",
            "|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        best = max(s["grid"], key=lambda p: p["val_macro_f1"])
        rows.append(f"| {s['seed']} | {s['stage']} | {s['suggestion']:.2g} | "
                    f"{args.grid[s['nearest_grid_point']]:g} | {s['nearest_rank_by_val']} of "
                    f"{len(args.grid)} | {s['at_suggestion']['test_macro_f1']:.3f} | "
                    f"{best['test_macro_f1']:.3f} (lr {best['learning_rate']:g}) | "
                    f"{100 * s['finder_share_of_a_run']:.0f} % |")
    return "\n".join(rows)


def parse_args(argv=None):
    p = demo.argument_parser(__doc__.splitlines()[0])
    p.add_argument("--task", choices=("text", "images"), default="text")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--grid", type=float, nargs="+", default=None,
                   help="learning rates to fine-tune at (default: 5 around the recipe's)")
    p.add_argument("--stages", nargs="+", default=["next", "last"],
                   help="policy stages to run the finder in: next, last or an index")
    p.add_argument("--plot", action="store_true", help="save seed 0's range-test figures")
    p.set_defaults(out="runs/lr_finder_study.json")
    if p.parse_known_args(argv)[0].task == "images":
        p.set_defaults(**recipes.IMAGE_DEFAULTS)
    args = demo.finish_args(p.parse_args(argv))
    if args.grid is None:
        args.grid = ([1e-4, 3e-4, 1e-3, 3e-3, 1e-2] if args.task == "text"
                     else [3e-4, 1e-3, 3e-3, 1e-2, 3e-2])
    if args.quick:
        args.grid = args.grid[2:4]
        if args.task == "images":
            args.labels, args.widths = 200, [8, 16]
    return args


if __name__ == "__main__":
    run(parse_args())
