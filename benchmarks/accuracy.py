"""The paper's Table 2 and Figure 3 at CPU scale on the shared CIFAR-10 JPEGs: supervised-only, the
Π model, Temporal Ensembling and Mean Teacher at 1000 and 4000 labels, every method evaluated on EMA
weights, with the same number of steps per label count, several seeds (label sets) per row.

Every run is the recipe of ``benchmarks.defaults`` (what ``meanteacher train --data CIFAR10 --labels N
--steps S`` does with a width-0.25 ConvNet in bf16), so the runs these two benchmarks share are trained
once. Phases:

``tune``: supervised-only and Mean Teacher at seed 0 with each learning rate of ``LEARNING_RATES``;
each keeps the one with the lowest validation error of its EMA network (100 images per class held out
of training; the test set is never looked at). The Π model and Temporal Ensembling, consistency
methods with Mean Teacher's recipe, take Mean Teacher's choice.
``table``: every method at every seed with the chosen learning rates; then every method at the longer
budgets of ``CURVES`` (and supervised-only and Mean Teacher at ``benchmarks.defaults``'s at 4000 labels)
for the curves.
``report``: no training; the table, figures and JSON from the runs finished so far.

Finished runs are skipped and killed ones resumed, so it can be stopped and started again at
any time; progress and an ETA are printed as runs finish.

The finished runs of both are kept in the repository as ``docs/bench/runs-defaults.tar.gz``
(``python -m benchmarks.runner archive runs/defaults docs/bench/runs-defaults.tar.gz``); on a fresh machine
``python -m benchmarks.runner restore docs/bench/runs-defaults.tar.gz runs/defaults`` brings them back.

    python -m benchmarks.accuracy [--phase tune|table|all|report] [--seeds 0 1 2] [--workers 2] [--json docs/bench/accuracy.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meanteacher.report import error_curves, mean_std, plot_comparison

from .common import machine, today
from .defaults import DEFAULT_LR, LONGER, OUT, recipe_job
from .runner import Job, Sweep, choose_on_validation, finished, tuned_runs_parser

STEPS = {1000: 1500, 4000: 5000}
"""Steps per label count: the same for every method."""
METHODS = ("supervised", "pi", "temporal-ensembling", "mean-teacher")
TUNED = ("supervised", "mean-teacher")
LR_OF = {"pi": "mean-teacher", "temporal-ensembling": "mean-teacher"}
"""Untuned methods and the tuned one whose learning rate they take."""
LEARNING_RATES = (0.0015, DEFAULT_LR, 0.006)
CURVES = ((1000, 5000),)
"""Longer budgets (labels, steps) trained here for every method at the table's learning rates, to show
from which budget Mean Teacher pulls ahead and how it stands against the Π model and Temporal Ensembling
there (4000 labels' longer runs are those of ``benchmarks.defaults``: supervised-only and Mean Teacher at
the default learning rate)."""
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figure3-cpu-{labels}-{steps}.png"


def tuning_grid() -> dict[tuple[int, str], dict[float, Job]]:
    """Per label count and tuned method, the run at seed 0 of each learning rate."""
    return {
        (labels, method): {lr: recipe_job(labels, steps, method, 0, lr=lr) for lr in LEARNING_RATES}
        for labels, steps in STEPS.items()
        for method in TUNED
    }


def tune_jobs() -> list[Job]:
    return [job for jobs in tuning_grid().values() for job in jobs.values()]


def chosen_lr(summaries: dict[str, dict[str, Any]], labels: int, method: str) -> float | None:
    """The learning rate of the grid with the lowest validation error (None until the grid is done)."""
    return choose_on_validation({lr: summaries.get(job.name) for lr, job in tuning_grid()[(labels, method)].items()})


def learning_rate(choices: dict[tuple[int, str], float], labels: int, method: str) -> float:
    """The method's learning rate at a label count: the tuned choice it takes, the default until tuning is done."""
    return choices.get((labels, LR_OF.get(method, method)), DEFAULT_LR)


def table_jobs(seeds: list[int], choices: dict[tuple[int, str], float]) -> list[Job]:
    """Every row's runs, the shorter budget's first, so that whole rows are finished early."""
    return [
        recipe_job(labels, steps, method, seed, lr=learning_rate(choices, labels, method))
        for labels, steps in STEPS.items()
        for seed in seeds
        for method in METHODS
    ]


def crossing_step(supervised: list[list[float]], teacher: list[list[float]], steps: list[int]) -> int | None:
    """The first evaluated step from which Mean Teacher's mean teacher error stays below supervised-only's
    mean EMA error until the end of the run (None if it never does)."""
    means = [
        (mean_std([run[i] for run in supervised])[0], mean_std([run[i] for run in teacher])[0])
        for i in range(len(steps))
    ]
    ahead = [t < s for s, t in means]
    for i, step in enumerate(steps):
        if all(ahead[i:]):
            return step
    return None


def rows(jobs: list[Job], summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per label count and method: errors (%) of the EMA network and the student, mean ± std over seeds."""
    out = []
    for labels, steps in STEPS.items():
        for method in METHODS:
            runs = [
                summaries[j.name]
                for j in jobs
                if j.name in summaries and j.config.labels == labels and j.config.method == method
            ]
            if runs:
                out.append(
                    {
                        "labels": labels,
                        "steps": steps,
                        "method": method,
                        "lr": runs[0]["lr"],
                        "seeds": [r["seed"] for r in runs],
                        "ema_error": mean_std([100 * r["ema_error"] for r in runs]),
                        "student_error": mean_std([100 * r["student_error"] for r in runs]),
                    }
                )
    return out


def figure(groups: dict[str, list[Path]], path: Path, title: str) -> int | None:
    """Plot the groups' curves (mean line, seed band) to ``path``; returns where Mean Teacher pulls ahead."""
    plot_comparison(groups, path, title=title)
    if "supervised" not in groups or "mean-teacher" not in groups:
        return None
    steps, supervised = error_curves(groups["supervised"])
    teacher_steps, teacher = error_curves(groups["mean-teacher"])
    shared = [s for s in steps if s in teacher_steps]
    return crossing_step(
        [[run[steps.index(s)] for s in shared] for run in supervised],
        [[run[teacher_steps.index(s)] for s in shared] for run in teacher],
        shared,
    )


def figures(jobs: list[Job], out: Path) -> dict[str, int | None]:
    """Figure 3 at CPU scale, one PNG per label count and budget (``LABELS-STEPS``); returns where Mean
    Teacher pulls ahead in each."""
    crossings = {}
    for labels, steps in sorted({(j.config.labels, j.config.steps) for j in jobs}):
        groups = {
            method: [
                out / j.name
                for j in jobs
                if (j.config.labels, j.config.steps, j.config.method) == (labels, steps, method)
                and (out / j.name / "summary.json").is_file()
            ]
            for method in METHODS
        }
        groups = {method: dirs for method, dirs in groups.items() if dirs}
        if groups:
            crossings[f"{labels}-{steps}"] = figure(
                groups,
                Path(str(FIGURE).format(labels=labels, steps=steps)),
                f"CIFAR-10, {labels} labels, {steps} steps (EMA networks)",
            )
    return crossings


def longer_jobs(seeds: list[int], choices: dict[tuple[int, str], float]) -> list[Job]:
    """Runs past the budgets of the table, for learning curves: supervised-only and Mean Teacher at the
    longer budgets of ``benchmarks.defaults`` (trained there), every method at those of ``CURVES``."""
    from_defaults = [
        recipe_job(labels, steps, method, seed)
        for labels, steps in LONGER
        if steps != STEPS.get(labels)
        for seed in seeds
        for method in TUNED
    ]
    return from_defaults + [
        recipe_job(labels, steps, method, seed, lr=learning_rate(choices, labels, method))
        for labels, steps in CURVES
        for seed in seeds
        for method in METHODS
    ]


def main(argv: list[str] | None = None) -> int:
    args = tuned_runs_parser(
        __doc__, "write the runs, the chosen learning rates, the table and the crossings here", OUT
    ).parse_args(argv)
    out = Path(args.out)
    sweep = Sweep(tuning_grid(), lambda choices: table_jobs(args.seeds, choices) + longer_jobs(args.seeds, choices))
    tuning, choices, _ = sweep.run(args.phase, out, args.workers)
    jobs, longer_runs = table_jobs(args.seeds, choices), longer_jobs(args.seeds, choices)
    summaries = finished(jobs, out)
    table = rows(jobs, summaries)
    for row in table:
        print(
            f"{row['labels']:>5} {row['method']:<20} lr {row['lr']:g}  EMA {row['ema_error'][0]:.2f} ± {row['ema_error'][1]:.2f}  "
            f"student {row['student_error'][0]:.2f} ± {row['student_error'][1]:.2f}  seeds {row['seeds']}"
        )
    longer = finished(longer_runs, out)
    crossings = figures(jobs + longer_runs, out)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "steps": {str(k): v for k, v in STEPS.items()},
                    "learning_rates": LEARNING_RATES,
                    "chosen_lr": {f"{labels}-{method}": lr for (labels, method), lr in choices.items()},
                    "tuning": tuning,
                    "runs": summaries,
                    "rows": table,
                    "longer_runs": longer,
                    "mean_teacher_ahead_from_step": {str(k): v for k, v in crossings.items()},
                    "cpu_hours": sum(s["seconds"] for s in (tuning | summaries | longer).values()) / 3600,
                    "machine": machine(),
                    "date": today(),
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
