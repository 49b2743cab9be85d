"""Mean Teacher + VAT, the combination the paper leaves open, at CPU scale on the shared CIFAR-10 JPEGs:
Mean Teacher, VAT and Mean Teacher + VAT at 1000 labels with the budget, seeds and learning rate of the
CPU Table 2 runs (presets ``cifar10-cpu-1000``, ``cifar10-cpu-1000-vat``, ``cifar10-cpu-1000-mean-teacher-vat``:
the recipe of ``benchmarks.defaults`` at 1500 steps). Like the Π model and Temporal Ensembling there, both VAT
methods take the learning rate ``benchmarks.accuracy`` chose for Mean Teacher on the validation split (its
default until that tuning is done). Phases:

``tune``: VAT and Mean Teacher + VAT at seed 0 with each perturbation norm of ``EPS_GRID``; each keeps
the one with the lowest validation error of its EMA network (the test set is never looked at).
``table``: both at every seed with their chosen norm, beside Mean Teacher's runs (shared with
``benchmarks.defaults`` and ``benchmarks.accuracy``).
``report``: no training; the table, the learning-curve figure and the JSON from the finished runs.

Finished runs are skipped and killed ones resumed (see ``runner``).

    python -m benchmarks.vat [--phase tune|table|all|report] [--seeds 0 1 2] [--workers 2] [--json docs/bench/vat.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meanteacher.report import mean_std, plot_comparison

from . import accuracy
from .common import machine, today
from .defaults import DEFAULT_LR, OUT, lr_suffix, recipe_config, recipe_job
from .runner import Job, Sweep, choose_on_validation, finished, tuned_runs_parser

LABELS, STEPS = 1000, 1500
VAT_METHODS = ("vat", "mean-teacher-vat")
EPS_GRID = (1.0, 2.0, 4.0, 8.0)
"""Norms of the adversarial perturbation per image (inputs standardised per channel) tried at seed 0; 1.0 was
added when 2.0, the smallest of the first grid, tied for VAT's lowest validation error."""
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "vat-cpu-1000.png"


def vat_job(method: str, eps: float, seed: int, lr: float = DEFAULT_LR) -> Job:
    """One VAT run of the recipe (named with ``lr_suffix``)."""
    fields = {
        "phase": "vat",
        "labels": LABELS,
        "steps": STEPS,
        "method": method,
        "vat_eps": eps,
        "seed": seed,
        "lr": lr,
    }
    return Job(
        f"vat-{LABELS}-{STEPS}-{method}-eps{eps:g}{lr_suffix(lr)}-s{seed}",
        recipe_config(
            **{k: v for k, v in fields.items() if k not in ("phase", "vat_eps")},
            **({} if method == "mean-teacher" else {f"{method}.eps": eps}),
        ),
        fields,
    )


def mean_teacher_lr(out: Path) -> float:
    """The learning rate ``benchmarks.accuracy`` chose for Mean Teacher at these labels (the default until chosen)."""
    tuning = finished(accuracy.tune_jobs(), out)
    return accuracy.chosen_lr(tuning, LABELS, "mean-teacher") or DEFAULT_LR


def tuning_grid(lr: float) -> dict[str, dict[float, Job]]:
    """Per VAT method, the run at seed 0 of each perturbation norm."""
    return {method: {eps: vat_job(method, eps, 0, lr) for eps in EPS_GRID} for method in VAT_METHODS}


def chosen_eps(tuning: dict[str, dict[str, Any]], method: str, lr: float) -> float | None:
    """The norm of the grid with the lowest validation error, the smaller on a tie (None until the grid is done)."""
    return choose_on_validation({eps: tuning.get(job.name) for eps, job in tuning_grid(lr)[method].items()})


def table_jobs(seeds: list[int], choices: dict[str, float], lr: float) -> dict[str, list[Job]]:
    """Per method, one job per seed (Mean Teacher's are the CPU Table 2 runs)."""
    jobs = {"mean-teacher": [recipe_job(LABELS, STEPS, "mean-teacher", seed, lr=lr) for seed in seeds]}
    jobs |= {
        method: [vat_job(method, choices[method], seed, lr) for seed in seeds]
        for method in VAT_METHODS
        if method in choices
    }
    return jobs


def rows(jobs: dict[str, list[Job]], summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: errors (%) of the EMA network and the student, mean ± std over seeds, and the paired
    gain over Mean Teacher (Mean Teacher's error minus the method's, same label set)."""
    teacher = {s["seed"]: s["ema_error"] for j in jobs["mean-teacher"] if (s := summaries.get(j.name))}
    out = []
    for method, method_jobs in jobs.items():
        runs = [summaries[j.name] for j in method_jobs if j.name in summaries]
        if not runs:
            continue
        gains = [100 * (teacher[r["seed"]] - r["ema_error"]) for r in runs if r["seed"] in teacher]
        out.append(
            {
                "method": method,
                "vat_eps": None if method == "mean-teacher" else method_jobs[0].fields["vat_eps"],
                "seeds": [r["seed"] for r in runs],
                "ema_error": mean_std([100 * r["ema_error"] for r in runs]),
                "student_error": mean_std([100 * r["student_error"] for r in runs]),
                "gain_over_mean_teacher": mean_std(gains) if gains and method != "mean-teacher" else None,
                "seconds_per_run": mean_std([r["seconds"] for r in runs]),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = tuned_runs_parser(
        __doc__, "write the tuning, the chosen norms, the table and the runs here", OUT
    ).parse_args(argv)
    out = Path(args.out)
    lr = mean_teacher_lr(out)
    sweep = Sweep(
        tuning_grid(lr), lambda choices: [job for jobs in table_jobs(args.seeds, choices, lr).values() for job in jobs]
    )
    tuning, choices, _ = sweep.run(args.phase, out, args.workers)
    jobs = table_jobs(args.seeds, choices, lr)
    summaries = finished([job for method_jobs in jobs.values() for job in method_jobs], out)
    table = rows(jobs, summaries)
    for row in table:
        gain = row["gain_over_mean_teacher"]
        print(
            f"{row['method']:<18} eps {row['vat_eps']}  EMA {row['ema_error'][0]:.2f} ± {row['ema_error'][1]:.2f}  "
            f"student {row['student_error'][0]:.2f} ± {row['student_error'][1]:.2f}  seeds {row['seeds']}"
            + (f"  gain over MT {gain[0]:+.2f} ± {gain[1]:.2f}" if gain else "")
        )
    groups = {
        method: [out / j.name for j in method_jobs if j.name in summaries] for method, method_jobs in jobs.items()
    }
    groups = {method: dirs for method, dirs in groups.items() if dirs}
    if groups:
        plot_comparison(groups, FIGURE, title=f"CIFAR-10, {LABELS} labels (EMA networks)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "labels": LABELS,
                    "steps": STEPS,
                    "lr": lr,
                    "eps_grid": EPS_GRID,
                    "chosen_eps": choices,
                    "tuning": tuning,
                    "runs": summaries,
                    "rows": table,
                    "figure": FIGURE.name if groups else None,
                    "cpu_hours": sum(s["seconds"] for s in (tuning | summaries).values()) / 3600,
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
