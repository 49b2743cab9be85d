"""Confident pseudo-labels at CPU scale on the shared CIFAR-10 JPEGs: Mean Teacher with the pseudo-label
cost (``consistency_type=pseudo:...``) and FixMatch, against supervised-only and Mean Teacher's MSE, all
with the strong student view, on the recipe and label sets of the CPU Table 2 (``benchmarks.strong``:
magnitude 0.5 and, for Mean Teacher's MSE, weight 10, both chosen there on validation).

``tune`` (seed 0, choices on the validation split only): Mean Teacher's threshold, FixMatch's fixed 0.95
or FreeMatch's self-adaptive one. ``table``: supervised-only, Mean Teacher with pseudo-labels and FixMatch
(its paper's 0.95) on ``--seeds`` label sets, in that order (``--extra-rows``: more, see ``EXTRA_ROWS``), with
the EMA network's test error at every evaluation, so that a reader sees when each method pulls ahead. ``report``: the table and the
paired gains over supervised-only from the runs finished so far. Finished runs are skipped and killed
ones resumed.

    python -m benchmarks.pseudo [--phase tune|table|all|report] [--seeds 0 1 2] [--workers 2] [--labels 1000 --steps 1500]
                                [--extra-rows mse full-labeled-batch] [--json docs/bench/pseudo.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meanteacher.config import apply_settings
from meanteacher.report import mean_std, plot_comparison
from meanteacher.run.rundir import read_metrics

from .common import machine, paired_gain, today, write_result
from .defaults import OUT
from .runner import Job, Sweep, tuned_runs_parser
from .strong import job as strong_job

MAGNITUDE = 0.5
MSE_WEIGHT = 10.0
THRESHOLDS = {0.95: "pseudo:0.95", 0.0: "pseudo:adaptive"}
"""Mean Teacher's thresholds tried, by a sortable key (0: FreeMatch's self-adaptive one)."""
FIXMATCH_THRESHOLD = "pseudo:0.95"
EVALUATIONS = 10
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "pseudo-{labels}-{steps}.png"


def job(
    labels: int,
    steps: int,
    method: str,
    seed: int,
    consistency_type: str | None = None,
    phase: str = "table",
    weight: float | None = None,
    full_labeled_batch: bool = False,
) -> Job:
    """One run of the CPU Table 2 recipe with the strong student view (``MAGNITUDE``), evaluated
    ``EVALUATIONS`` times; Mean Teacher with ``consistency_type`` (its MSE at ``MSE_WEIGHT`` without one),
    at the consistency ``weight`` given (automatic without). ``full_labeled_batch``: a semi-supervised
    method gets supervised-only's whole batch of labeled images and as many unlabeled ones beside them
    (FixMatch's mu = 1), instead of sharing the batch half and half."""
    mse_weight = MSE_WEIGHT if method == "mean-teacher" and consistency_type is None else None
    base = strong_job(labels, steps, method, seed, "strong", MAGNITUDE, mse_weight)
    settings: dict[str, Any] = {"eval_every": steps // EVALUATIONS}
    if consistency_type:
        settings["consistency_type"] = consistency_type
    if weight is not None:
        settings["consistency"] = weight
    if full_labeled_batch and method != "supervised":
        settings.update(batch_size=2 * base.config.batch_size, labeled_per_batch=base.config.batch_size)
    kind = consistency_type.removeprefix("pseudo:") if consistency_type else "mse" if method == "mean-teacher" else ""
    name = (
        f"pseudo-{labels}-{steps}-{method}"
        + (f"-{kind}" if kind else "")
        + ("" if weight is None else f"-w{weight:g}")
        + (f"-b{settings['batch_size']}" if "batch_size" in settings else "")
        + f"-s{seed}"
    )
    return Job(
        name,
        apply_settings(base.config, settings, "pseudo-label benchmark"),
        {**base.fields, **settings, "consistency_type": consistency_type or "", "phase": phase},
    )


EXTRA_ROWS = ("mse", "full-labeled-batch")
"""Rows beyond the three: ``mse``, Mean Teacher's MSE and Mean Teacher at a consistency weight of 0 (what
sharing the batch with unlabeled images does, told from what the consistency cost does);
``full-labeled-batch``, the pseudo-label methods with supervised-only's 100 labeled images a step plus
100 unlabeled ones."""


def rows(labels: int, steps: int, seed: int, choices: dict[str, float], extras: tuple[str, ...] = ()) -> dict[str, Job]:
    """The table's rows for one label set, the pseudo-label methods at the thresholds chosen so far, and
    the ``extras`` (``EXTRA_ROWS``)."""
    table = {"supervised": job(labels, steps, "supervised", seed)}
    if "mse" in extras:
        table["mean-teacher (MSE)"] = job(labels, steps, "mean-teacher", seed)
        table["mean-teacher (weight 0)"] = job(labels, steps, "mean-teacher", seed, weight=0.0)
    if "mean-teacher" in choices:
        table["mean-teacher (pseudo-labels)"] = job(
            labels, steps, "mean-teacher", seed, THRESHOLDS[choices["mean-teacher"]]
        )
    table["fixmatch"] = job(labels, steps, "fixmatch", seed, FIXMATCH_THRESHOLD)
    if "full-labeled-batch" in extras:
        if "mean-teacher" in choices:
            table["mean-teacher (pseudo-labels), 100 + 100"] = job(
                labels, steps, "mean-teacher", seed, THRESHOLDS[choices["mean-teacher"]], full_labeled_batch=True
            )
        table["fixmatch, 100 + 100"] = job(labels, steps, "fixmatch", seed, FIXMATCH_THRESHOLD, full_labeled_batch=True)
    return table


def sweep(labels: int, steps: int, seeds: list[int], extras: tuple[str, ...] = ()) -> Sweep:
    """Mean Teacher's threshold at seed 0, then the table row by row (every label set of a row before the next row)."""
    grid = {
        "mean-teacher": {
            key: job(labels, steps, "mean-teacher", 0, kind, phase="tune") for key, kind in THRESHOLDS.items()
        }
    }

    def table(choices: dict[str, float]) -> list[Job]:
        by_seed = [rows(labels, steps, seed, choices, extras) for seed in seeds]
        return [table[row] for row in by_seed[0] for table in by_seed]

    return Sweep(grid, table)


def _curve(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], 100 * r["ema_error"]) for r in read_metrics(run / "metrics.jsonl") if "ema_error" in r]


def report(
    labels: int, steps: int, seeds: list[int], choices: dict[str, float], out: Path, extras: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Per row: EMA test error mean ± std over the finished label sets, its curve per label set, and the
    paired gain over supervised-only (supervised's error minus the row's: positive, the row is better)."""
    table: dict[str, dict[int, Path]] = {}
    for seed in seeds:
        for row, row_job in rows(labels, steps, seed, choices, extras).items():
            if (out / row_job.name / "summary.json").is_file():
                table.setdefault(row, {})[seed] = out / row_job.name
    result: dict[str, Any] = {}
    supervised = {seed: _curve(run)[-1][1] for seed, run in table.get("supervised", {}).items()}
    for row, runs in table.items():
        errors = {seed: _curve(run)[-1][1] for seed, run in runs.items()}
        entry: dict[str, Any] = {
            "error": mean_std(list(errors.values())),
            "per_label_set": errors,
            "curves": {seed: _curve(run) for seed, run in runs.items()},
        }
        last = [read_metrics(run / "metrics.jsonl")[-1] for run in runs.values()]
        if all("pseudo_mask_rate" in record for record in last):
            entry["pseudo_labels_at_end"] = {
                key: mean_std([100 * record.get(key, 0.0) for record in last])
                for key in ("pseudo_mask_rate", "pseudo_accuracy")
            }
        gain = paired_gain(supervised, errors)
        if row != "supervised" and gain:
            entry["gain_over_supervised"] = gain
        result[row] = entry
    return result


def main(argv: list[str] | None = None) -> int:
    parser = tuned_runs_parser(__doc__.splitlines()[0], "write the tuning and the table here", OUT)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument(
        "--extra-rows", nargs="+", choices=EXTRA_ROWS, default=[], help="rows beyond the three (see EXTRA_ROWS)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    tuning, choices, _ = sweep(args.labels, args.steps, args.seeds, tuple(args.extra_rows)).run(
        args.phase, out, args.workers
    )
    cell = {
        "machine": machine(),
        "date": today(),
        "command": f"python -m benchmarks.pseudo --labels {args.labels} --steps {args.steps} --seeds {' '.join(map(str, args.seeds))}"
        + (f" --extra-rows {' '.join(args.extra_rows)}" if args.extra_rows else ""),
        "choices": {method: THRESHOLDS[key] for method, key in choices.items()},
        "tuning": {
            name: {"validation_ema_error": s["validation_ema_error"], "consistency_type": s.get("consistency_type")}
            for name, s in tuning.items()
        },
        "table": report(args.labels, args.steps, args.seeds, choices, out, tuple(args.extra_rows)),
    }
    groups = {
        row: [
            out / j.name
            for seed in args.seeds
            for r, j in rows(args.labels, args.steps, seed, choices, tuple(args.extra_rows)).items()
            if r == row and (out / j.name / "metrics.jsonl").is_file()
        ]
        for row in cell["table"]
    }
    if groups and all(groups.values()):
        plot_comparison(
            groups,
            FIGURE.with_name(FIGURE.name.format(labels=args.labels, steps=args.steps)),
            f"CIFAR-10, {args.labels} labels, {args.steps} steps: confident pseudo-labels",
        )
    print(json.dumps({k: v for k, v in cell.items() if k != "table"}, indent=2))
    for row, entry in cell["table"].items():
        print(row, entry["error"], entry.get("gain_over_supervised", {}).get("gain"))
    if args.json:  # one file for every cell: this one's entry replaced
        path = Path(args.json)
        cells = json.loads(path.read_text()).get("cells", {}) if path.is_file() else {}
        write_result(path, {"cells": {**cells, f"{args.labels}/{args.steps}": cell}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
