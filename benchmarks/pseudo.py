"""Confident pseudo-labels at CPU scale on the shared CIFAR-10 JPEGs: Mean Teacher with the pseudo-label
cost (``consistency_type=pseudo:...``) and FixMatch, against supervised-only and Mean Teacher's MSE, all
with the strong student view, on the recipe and label sets of the CPU Table 2 (``benchmarks.strong``:
magnitude 0.5 and, for Mean Teacher's MSE, weight 10, both chosen there on validation).

``tune`` (seed 0, choices on the validation split only): Mean Teacher's threshold for each batch
composition of ``--rows`` (``THRESHOLDS``); FixMatch keeps its paper's 0.95. ``table``: supervised-only,
then the groups of rows of ``--rows`` (``ROW_GROUPS``) on ``--seeds`` label sets, label set by label set
with FixMatch's rows last, with the EMA network's test error at every evaluation, so that a reader sees when
each method pulls ahead. ``report``: the table and the paired gains over supervised-only from the runs
finished so far, and the curve so far of each run still training. Finished runs are skipped and killed
ones resumed.

    python -m benchmarks.pseudo [--phase tune|table|all|report] [--seeds 0 1 2] [--workers 2] [--threads T]
                                [--labels 1000 --steps 1500] [--rows shared-batch mse full-labeled-batch strong-labels]
                                [--full-batch-threshold 0.8] [--precision bf16|fp32]
                                [--json docs/bench/pseudo.json]
"""

from __future__ import annotations

import json
from functools import partial
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
SHARED = "mean-teacher"
FULL = "mean-teacher, 100 + 100"
THRESHOLDS = {
    SHARED: {0.95: "pseudo:0.95", 0.0: "pseudo:adaptive"},
    FULL: {0.95: "pseudo:0.95", 0.8: "pseudo:0.8"},
}
"""Mean Teacher's thresholds tried, by a sortable key (0: FreeMatch's self-adaptive one), with the batch
shared half and half (``SHARED``) and with supervised-only's whole labeled batch plus as many unlabeled
images (``FULL``), where a lower threshold lets more pseudo-labels through in a short run."""
FIXMATCH_THRESHOLD = "pseudo:0.95"
EVALUATIONS = 10
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "pseudo-{cell}.png"


def cell_key(labels: int, steps: int, precision: str) -> str:
    """A cell's key in the report, ``labels/steps``, with ``/precision`` where it is not the recipe's bf16 (so
    that a budget measured in bf16 on one machine and in fp32 on another keeps both tables)."""
    return f"{labels}/{steps}" + ("" if precision == "bf16" else f"/{precision}")


def job(
    labels: int,
    steps: int,
    method: str,
    seed: int,
    consistency_type: str | None = None,
    phase: str = "table",
    weight: float | None = None,
    full_labeled_batch: bool = False,
    precision: str = "bf16",
    labeled_view: str = "weak",
) -> Job:
    """One run of the CPU Table 2 recipe with the strong student view (``MAGNITUDE``), evaluated
    ``EVALUATIONS`` times; Mean Teacher with ``consistency_type`` (its MSE at ``MSE_WEIGHT`` without one),
    at the consistency ``weight`` given (automatic without). ``full_labeled_batch``: a semi-supervised
    method gets supervised-only's whole batch of labeled images and as many unlabeled ones beside them
    (FixMatch's mu = 1), instead of sharing the batch half and half. ``precision``: the recipe's bf16, or fp32
    on a CPU without bf16 in hardware, where bf16 is emulated and many times slower. ``labeled_view``:
    FixMatch's labeled images on the paper's weak view or on the strong one."""
    mse_weight = MSE_WEIGHT if method == "mean-teacher" and consistency_type is None else None
    base = strong_job(labels, steps, method, seed, "strong", MAGNITUDE, mse_weight, precision=precision)
    settings: dict[str, Any] = {"eval_every": steps // EVALUATIONS}
    if consistency_type:
        settings["consistency_type"] = consistency_type
    if weight is not None:
        settings["consistency"] = weight
    if full_labeled_batch and method != "supervised":
        settings.update(batch_size=2 * base.config.batch_size, labeled_per_batch=base.config.batch_size)
    if labeled_view != "weak":
        settings["fixmatch.labeled_view"] = labeled_view
    kind = consistency_type.removeprefix("pseudo:") if consistency_type else "mse" if method == "mean-teacher" else ""
    name = (
        f"pseudo-{labels}-{steps}-{method}"
        + (f"-{kind}" if kind else "")
        + ("" if weight is None else f"-w{weight:g}")
        + ("" if labeled_view == "weak" else f"-{labeled_view}-labels")
        + (f"-b{settings['batch_size']}" if "batch_size" in settings else "")
        + ("" if precision == "bf16" else f"-{precision}")
        + f"-s{seed}"
    )
    return Job(
        name,
        apply_settings(base.config, settings, "pseudo-label benchmark"),
        {**base.fields, **settings, "consistency_type": consistency_type or "", "phase": phase},
    )


ROW_GROUPS = ("shared-batch", "mse", "full-labeled-batch", "strong-labels")
"""The rows beside supervised-only: ``shared-batch``, the pseudo-label methods sharing a batch of 100 half
and half; ``mse``, Mean Teacher's MSE and Mean Teacher at a consistency weight of 0 (what sharing the
batch with unlabeled images does, told from what the consistency cost does); ``full-labeled-batch``, the
pseudo-label methods with supervised-only's 100 labeled images a step plus 100 unlabeled ones;
``strong-labels``, FixMatch as in ``full-labeled-batch`` with its labeled images on the strong view,
supervised-only's."""


def rows(
    labels: int, steps: int, seed: int, choices: dict[str, float], groups: tuple[str, ...], precision: str = "bf16"
) -> dict[str, Job]:
    """The table's rows for one label set: supervised-only, then the ``groups`` (``ROW_GROUPS``), Mean
    Teacher's pseudo-label rows at the thresholds chosen so far, all in ``precision``."""
    row_job = partial(job, precision=precision)
    table = {"supervised": row_job(labels, steps, "supervised", seed)}
    if "mse" in groups:
        table["mean-teacher (MSE)"] = row_job(labels, steps, "mean-teacher", seed)
        table["mean-teacher (weight 0)"] = row_job(labels, steps, "mean-teacher", seed, weight=0.0)
    if "shared-batch" in groups:
        if SHARED in choices:
            threshold = THRESHOLDS[SHARED][choices[SHARED]]
            table["mean-teacher (pseudo-labels)"] = row_job(labels, steps, "mean-teacher", seed, threshold)
        table["fixmatch"] = row_job(labels, steps, "fixmatch", seed, FIXMATCH_THRESHOLD)
    if "full-labeled-batch" in groups:
        if FULL in choices:
            threshold = THRESHOLDS[FULL][choices[FULL]]
            table["mean-teacher (pseudo-labels), 100 + 100"] = row_job(
                labels, steps, "mean-teacher", seed, threshold, full_labeled_batch=True
            )
        table["fixmatch, 100 + 100"] = row_job(
            labels, steps, "fixmatch", seed, FIXMATCH_THRESHOLD, full_labeled_batch=True
        )
    if "strong-labels" in groups:
        table["fixmatch, labeled on the strong view, 100 + 100"] = row_job(
            labels, steps, "fixmatch", seed, FIXMATCH_THRESHOLD, full_labeled_batch=True, labeled_view="strong"
        )
    return table


def sweep(
    labels: int,
    steps: int,
    seeds: list[int],
    groups: tuple[str, ...],
    chosen: dict[str, float],
    precision: str = "bf16",
) -> Sweep:
    """Mean Teacher's threshold at seed 0 for each batch composition of ``groups`` not ``chosen`` already,
    then the table label set by label set, supervised-only and Mean Teacher's rows first, so that an
    unfinished table still holds pairs; FixMatch's rows last."""
    tuned = {SHARED: "shared-batch", FULL: "full-labeled-batch"}
    grid = {
        cell: {
            key: job(
                labels,
                steps,
                "mean-teacher",
                0,
                kind,
                phase="tune",
                full_labeled_batch=cell == FULL,
                precision=precision,
            )
            for key, kind in THRESHOLDS[cell].items()
        }
        for cell, group in tuned.items()
        if group in groups and cell not in chosen
    }

    def table(choices: dict[str, float]) -> list[Job]:
        by_seed = [rows(labels, steps, seed, {**chosen, **choices}, groups, precision) for seed in seeds]
        return [
            table[row]
            for fixmatch in (False, True)
            for table in by_seed
            for row in table
            if row.startswith("fixmatch") == fixmatch
        ]

    return Sweep(grid, table)


def _curve(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], 100 * r["ema_error"]) for r in read_metrics(run / "metrics.jsonl") if "ema_error" in r]


def run_dirs(
    labels: int,
    steps: int,
    seeds: list[int],
    choices: dict[str, float],
    out: Path,
    groups: tuple[str, ...],
    precision: str = "bf16",
) -> tuple[dict[str, dict[int, Path]], dict[str, dict[int, Path]]]:
    """The table's run directories by row and label set: the finished ones (a summary written), and the
    unfinished ones that have evaluated at least once."""
    finished: dict[str, dict[int, Path]] = {}
    still: dict[str, dict[int, Path]] = {}
    for seed in seeds:
        for row, row_job in rows(labels, steps, seed, choices, groups, precision).items():
            run = out / row_job.name
            if (run / "summary.json").is_file():
                finished.setdefault(row, {})[seed] = run
            elif _curve(run):
                still.setdefault(row, {})[seed] = run
    return finished, still


def report(table: dict[str, dict[int, Path]], still: dict[str, dict[int, Path]]) -> dict[str, Any]:
    """From the finished and unfinished run directories (``run_dirs``): ``table``, per row, EMA test error
    mean ± std over the finished label sets, its curve per label set, and the paired gain over supervised-only
    (supervised's error minus the row's: positive, the row is better); ``unfinished``, per row, the curve so far
    of each label set whose run is still training."""
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
    return {
        "table": result,
        "unfinished": {row: {seed: _curve(run) for seed, run in runs.items()} for row, runs in still.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = tuned_runs_parser(__doc__.splitlines()[0], "write the tuning and the table here", OUT)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROW_GROUPS,
        default=["shared-batch"],
        help="the groups of rows beside supervised-only (see ROW_GROUPS)",
    )
    parser.add_argument(
        "--full-batch-threshold",
        type=float,
        choices=sorted(THRESHOLDS[FULL]),
        help="Mean Teacher's threshold for the full-labeled-batch rows as chosen on validation at another"
        " budget of the same labels: no tuning at this one",
    )
    parser.add_argument(
        "--precision",
        choices=["bf16", "fp32"],
        default="bf16",
        help="the recipe's bf16, or fp32 on a CPU without bf16 in hardware (there bf16 is emulated and many times slower)",
    )
    args = parser.parse_args(argv)
    out, groups = Path(args.out), tuple(args.rows)
    chosen = {} if args.full_batch_threshold is None else {FULL: args.full_batch_threshold}
    tuning, choices, _ = sweep(args.labels, args.steps, args.seeds, groups, chosen, args.precision).run(
        args.phase, out, args.workers, args.threads
    )
    choices = {**chosen, **choices}
    finished, still = run_dirs(args.labels, args.steps, args.seeds, choices, out, groups, args.precision)
    cell = {
        "machine": machine(),
        "date": today(),
        "command": f"python -m benchmarks.pseudo --labels {args.labels} --steps {args.steps} --seeds {' '.join(map(str, args.seeds))}"
        + f" --rows {' '.join(groups)}"
        + ("" if args.full_batch_threshold is None else f" --full-batch-threshold {args.full_batch_threshold:g}")
        + ("" if args.precision == "bf16" else f" --precision {args.precision}"),
        "precision": args.precision,
        "choices": {cell: THRESHOLDS[cell][key] for cell, key in choices.items()},
        "chosen_elsewhere": {cell: THRESHOLDS[cell][key] for cell, key in chosen.items()},
        "tuning": {
            name: {"validation_ema_error": s["validation_ema_error"], "consistency_type": s.get("consistency_type")}
            for name, s in tuning.items()
        },
        **report(finished, still),
    }
    key = cell_key(args.labels, args.steps, args.precision)
    if finished:
        plot_comparison(
            {row: list(by_seed.values()) for row, by_seed in finished.items()},
            FIGURE.with_name(FIGURE.name.format(cell=key.replace("/", "-"))),
            f"CIFAR-10, {args.labels} labels, {args.steps} steps: confident pseudo-labels",
        )
    print(json.dumps({k: v for k, v in cell.items() if k not in ("table", "unfinished")}, indent=2))
    for row, entry in cell["table"].items():
        print(row, entry["error"], entry.get("gain_over_supervised", {}).get("gain"))
    if args.json:  # one file for every cell: this one's entry replaced
        path = Path(args.json)
        cells = json.loads(path.read_text()).get("cells", {}) if path.is_file() else {}
        write_result(path, {"cells": {**cells, key: cell}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
