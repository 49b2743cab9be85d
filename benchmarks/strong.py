"""A weak teacher and a strong student at CPU scale on the shared CIFAR-10 JPEGs: supervised-only and
Mean Teacher, each with the paper's noise (``student_view=weak``) and with the strong student view
(RandAugment-style operations and cutout, ``student_view=strong``), on the recipe and label sets of the
CPU Table 2 (``benchmarks.accuracy``: ``recipe_job``, learning rate 0.006).

``tune`` (seed 0, 1000 labels, 1500 steps, choices on the validation split only): the strong view's
magnitude for both methods, and Mean Teacher's consistency weight with it.
``table``: the four rows at 1000 labels with 1500 and 5000 steps and at 4000 labels with 5000 steps,
on ``--seeds`` label sets. ``report``: the table, paired gains and a learning-curve figure from the
runs finished so far; where a cell's runs did not all finish, also the rows and gains at the last
evaluation all of them reached (the same step of the same schedule, so still paired). Finished runs
are skipped and killed ones resumed.

    python -m benchmarks.strong [--phase tune|table|all|report] [--seeds 0 1 2] [--workers 2] [--data ARCHIVE]
                                [--tag cpu] [--json docs/bench/strong.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meanteacher.config import apply_settings
from meanteacher.report import error_curves, mean_std, plot_comparison
from meanteacher.run.rundir import read_metrics

from .common import machine, today, write_result
from .defaults import OUT, recipe_job
from .runner import Job, Sweep, finished, tuned_runs_parser

LR = 0.006
"""The CPU Table 2's learning rate (chosen there on the validation split)."""
CELLS = ((1000, 1500), (1000, 5000), (4000, 5000))
MAGNITUDES = (0.5, 1.0)
CONSISTENCY = (10.0, 30.0, 100.0)
"""Mean Teacher's weight with a strong student: 1, 3 (the default) and 10 per class."""
ROWS = (("supervised", "weak"), ("supervised", "strong"), ("mean-teacher", "weak"), ("mean-teacher", "strong"))
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "strong-{tag}-{labels}-{steps}-{precision}.png"


def job(
    labels: int,
    steps: int,
    method: str,
    seed: int,
    view: str,
    magnitude: float = 1.0,
    consistency: float | None = None,
    phase: str = "table",
    precision: str = "bf16",
    data: str | None = None,
) -> Job:
    """One run of the CPU Table 2 recipe with the student's view (and, strong, its magnitude and Mean Teacher's
    weight), in the recipe's bf16 or in ``precision``, on the shared CIFAR-10 archive or on ``data`` (a copy
    of it elsewhere: same run, same name)."""
    base = recipe_job(labels, steps, method, seed, lr=LR)
    settings: dict[str, Any] = (
        {}
        if view == "weak"
        else {
            "student_view": view,
            "strong_magnitude": magnitude,
            **({"consistency": consistency} if consistency else {}),
        }
    )
    if precision != base.config.precision:
        settings["precision"] = precision
    config = apply_settings(base.config, {"dataset": data}, "strong benchmark") if data else base.config
    if not settings:
        return Job(base.name, config, base.fields)  # the very run benchmarks.accuracy trains
    name = (
        f"strong-{labels}-{steps}-{method}"
        + ("-weak" if view == "weak" else f"-m{magnitude:g}")
        + (f"-c{consistency:g}" if consistency and view != "weak" else "")
        + ("" if precision == "bf16" else f"-{precision}")
        + f"-s{seed}"
    )
    return Job(
        name,
        apply_settings(config, settings, "strong benchmark"),
        {**base.fields, **settings, "view": view, "precision": precision, "phase": phase},
    )


def sweep(seeds: list[int], precision: str = "bf16", data: str | None = None) -> Sweep:
    """Tuning at seed 0, then the four rows of every cell on ``seeds``."""
    grid = {
        "supervised": {
            (m, 0.0): job(1000, 1500, "supervised", 0, "strong", m, phase="tune", precision=precision, data=data)
            for m in MAGNITUDES
        },
        "mean-teacher": {
            (m, c): job(1000, 1500, "mean-teacher", 0, "strong", m, c, phase="tune", precision=precision, data=data)
            for m in MAGNITUDES
            for c in CONSISTENCY
        },
    }

    def table(choices: dict[str, tuple[float, float]]) -> list[Job]:
        jobs = []
        for labels, steps in CELLS:
            for seed in seeds:
                for method, view in ROWS:
                    magnitude, consistency = choices.get(method, (1.0, 0.0))
                    jobs.append(
                        job(
                            labels,
                            steps,
                            method,
                            seed,
                            view,
                            magnitude,
                            consistency or None,
                            precision=precision,
                            data=data,
                        )
                    )
        return jobs

    return Sweep(grid, table)


def _gains(rows: dict[str, dict[int, float]]) -> dict[str, Any]:
    """Paired gains of the strong Mean Teacher over each other row (error of the row minus its own, per
    label set where both have one)."""
    ours = rows["mean-teacher/strong"]
    gains = {}
    for other, errors in rows.items():
        seeds = sorted(set(ours) & set(errors))
        if other != "mean-teacher/strong" and seeds:
            differences = [errors[s] - ours[s] for s in seeds]
            gains[other] = {"label_sets": len(seeds), "gain": mean_std(differences), "values": differences}
    return gains


def _rows(rows: dict[str, dict[int, float]]) -> dict[str, Any]:
    return {k: {"seeds": v, "error": mean_std(list(v.values())) if v else None} for k, v in rows.items()}


def _error_at(run: Path, step: int) -> float:
    """The EMA network's test error (%) of a run at the evaluation of ``step``."""
    return next(
        100 * r["ema_error"] for r in read_metrics(run / "metrics.jsonl") if r["step"] == step and "ema_error" in r
    )


def _cell_jobs(table_jobs: list[Job], labels: int, steps: int) -> dict[str, list[Job]]:
    return {
        f"{method}/{view}": [
            j
            for j in table_jobs
            if j.fields["labels"] == labels
            and j.fields["steps"] == steps
            and j.fields["method"] == method
            and j.fields.get("view", "weak") == view
        ]
        for method, view in ROWS
    }


def report(runs: dict[str, dict[str, Any]], table_jobs: list[Job], out: Path) -> dict[str, Any]:
    """Per cell and row: EMA test error mean ± std; paired gains of the strong Mean Teacher over the
    other three rows, over the label sets where all finished. Where some of a cell's runs did not
    finish, ``at_step`` gives the same at the last evaluation every run of the cell reached."""
    cells = {}
    for labels, steps in CELLS:
        jobs = _cell_jobs(table_jobs, labels, steps)
        rows = {
            row: {j.fields["seed"]: 100 * runs[j.name]["ema_error"] for j in row_jobs if j.name in runs}
            for row, row_jobs in jobs.items()
        }
        cell = {"rows": _rows(rows), "gains_of_strong_mean_teacher": _gains(rows)}
        started = {
            row: [j for j in row_jobs if (out / j.name / "metrics.jsonl").is_file()] for row, row_jobs in jobs.items()
        }
        if sum(map(len, started.values())) > sum(map(len, rows.values())):
            shared_steps, _ = error_curves([out / j.name for row_jobs in started.values() for j in row_jobs])
            if shared_steps:
                step = shared_steps[-1]
                at = {
                    row: {j.fields["seed"]: _error_at(out / j.name, step) for j in row_jobs}
                    for row, row_jobs in started.items()
                }
                cell["at_step"] = {"step": step, "rows": _rows(at), "gains_of_strong_mean_teacher": _gains(at)}
        cells[f"{labels}/{steps}"] = cell
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = tuned_runs_parser(__doc__.splitlines()[0], "write the tuning, the table and the gains here", OUT)
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        default="bf16",
        help="fp32: the same recipe where bf16 is emulated (a CPU without AVX-512 BF16 or AMX); its own runs, weak rows included",
    )
    parser.add_argument(
        "--data", help="the CIFAR-10 JPEG archive, where the shared copy is not beside the checkout (a GPU machine)"
    )
    parser.add_argument("--tag", default="cpu", help="in the figures' names: where the runs were trained (default cpu)")
    parser.add_argument(
        "--trained-on", help="the machine that trained the runs, for the JSON, when the report is written elsewhere"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    tuning, choices, table_jobs = sweep(args.seeds, args.precision, args.data).run(args.phase, out, args.workers)
    runs = finished(table_jobs, out)
    result = {
        "machine": args.trained_on or machine(),
        "date": today(),
        "precision": args.precision,
        "tag": args.tag,
        "command": f"python -m benchmarks.strong --seeds {' '.join(map(str, args.seeds))} --precision {args.precision} --tag {args.tag}"
        + ("" if args.out == OUT else f" --out {args.out}"),
        "choices": {method: list(value) for method, value in choices.items()},
        "tuning": {
            name: {
                "validation_ema_error": s["validation_ema_error"],
                "fields": {k: s.get(k) for k in ("method", "strong_magnitude", "consistency")},
            }
            for name, s in tuning.items()
        },
        "cells": report(runs, table_jobs, out),
    }
    for labels, steps in CELLS:
        groups = {
            f"{row.replace('/', ', ')}": [out / j.name for j in row_jobs if (out / j.name / "metrics.jsonl").is_file()]
            for row, row_jobs in _cell_jobs(table_jobs, labels, steps).items()
        }
        if all(groups.values()):
            plot_comparison(
                groups,
                FIGURE.with_name(
                    FIGURE.name.format(tag=args.tag, labels=labels, steps=steps, precision=args.precision)
                ),
                f"CIFAR-10, {labels} labels, {steps} steps: weak and strong student views",
            )
    print(json.dumps(result["cells"], indent=2))
    if args.json:
        write_result(Path(args.json), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
