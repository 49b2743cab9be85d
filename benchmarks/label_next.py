"""Does the teacher pick better than chance? ``meanteacher suggest``'s strategies on the shared CIFAR-10
JPEGs at CPU scale (the ``cifar10-cpu-1000`` preset's recipe, 100 images a class held out for validation).

``first``: Mean Teacher from 250 labels (``--seeds`` label sets), the rest of the training images as its
unlabeled images. ``pick``: each strategy of ``suggest`` picks 250 more of them, labelled from the true
labels (a label file of the 500), its scoring timed on one core. ``second``: Mean Teacher again with the
500 labels, from scratch and with ``--init`` from the first run: by default (``--starts chosen``) both
starts on ``random``'s picks of the first label set, then every strategy on every label set from the start
with the lower validation error there. ``report``: test error per strategy and start, the paired gain over
``random``, and which start and strategy win on the validation split. Finished runs are skipped and killed
ones resumed.

    python -m benchmarks.label_next [--phase first|pick|second|all|report] [--seeds 0 1 2] [--workers 2]
                                    [--starts both|chosen|scratch|init]
                                    [--strategies ...] [--json docs/bench/label_next.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from meanteacher.config import apply_settings
from meanteacher.config.toml import load_preset
from meanteacher.report import mean_std, pyplot, save_figure
from meanteacher.run.rundir import read_summary

from .common import SHARED_CIFAR, machine, markdown_table, paired_gain, today, write_result
from .runner import Job, run_jobs

OUT = "runs/label_next"
FIRST_LABELS = 250
PICKS = 250
STRATEGIES = ("disagreement", "entropy", "margin", "random")
STARTS = ("scratch", "init")
EVALUATIONS = 10
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "label-next.png"


def _config(seed: int, **settings: Any):
    base = load_preset("cifar10-cpu-1000")
    values = {"dataset": str(SHARED_CIFAR), "seed": seed, "eval_every": base.steps // EVALUATIONS, **settings}
    return apply_settings(base, values, "label-next benchmark")


def first_job(seed: int) -> Job:
    """Mean Teacher from ``FIRST_LABELS`` labels of label set ``seed``."""
    return Job(f"first-s{seed}", _config(seed, labels=FIRST_LABELS), {"phase": "first", "seed": seed})


def label_file(out: Path, seed: int, strategy: str) -> Path:
    return out / "labels" / f"{strategy}-s{seed}.txt"


def pick(out: Path, seed: int, strategy: str) -> dict[str, Any]:
    """Strategy ``strategy``'s ``PICKS`` images from the first run's unlabeled ones, written with the first
    run's labels as one label file; the picks' true classes, and the seconds the scoring took."""
    from meanteacher.data.sources import load_dataset
    from meanteacher.inference import load_run
    from meanteacher.suggest import rank, run_candidates, score

    path, record = label_file(out, seed, strategy), label_file(out, seed, strategy).with_suffix(".json")
    if record.is_file():
        return json.loads(record.read_text())
    torch.set_num_threads(1)
    first = out / first_job(seed).name
    run = load_run(first)
    dataset = load_dataset(run.config.dataset, image_size=run.config.image_size)
    candidates = run_candidates(run)
    started = time.process_time()
    scores, _, _ = score(run, candidates.images, strategy, seed=seed)
    picks = rank(scores)[:PICKS]
    seconds = time.process_time() - started
    position = {image_id: index for index, image_id in enumerate(dataset.train_ids)}
    picked = [position[candidates.names[i]] for i in picks]
    lines = (first / "labels.txt").read_text().splitlines()
    lines += [f"{dataset.train_ids[i]} {dataset.classes[int(dataset.train_labels[i])]}" for i in picked]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    classes = torch.bincount(dataset.train_labels[picked], minlength=dataset.num_classes).tolist()
    result = {"seconds": round(seconds, 1), "candidates": len(candidates.names), "picked_per_class": classes}
    record.write_text(json.dumps(result))
    return result


def second_job(out: Path, seed: int, strategy: str, start: str) -> Job:
    """Mean Teacher with the first run's labels and ``strategy``'s picks, from scratch or from the first run."""
    settings: dict[str, Any] = {"labels": 0, "label_file": str(label_file(out, seed, strategy).resolve())}
    if start == "init":
        settings["init"] = str((out / first_job(seed).name).resolve())
    fields = {"phase": "second", "seed": seed, "strategy": strategy, "start": start}
    return Job(f"second-{strategy}-{start}-s{seed}", _config(seed, **settings), fields)


def _second_errors(out: Path, seeds: list[int]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """Test and validation errors (%) of the finished second runs, by start, strategy and label set."""
    errors: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for strategy in STRATEGIES:
        for start in STARTS:
            for seed in seeds:
                run = out / second_job(out, seed, strategy, start).name
                if (run / "summary.json").is_file():
                    summary = read_summary(run)
                    errors.setdefault(start, {}).setdefault(strategy, {})[seed] = {
                        "test": 100 * summary["ema_error"],
                        "validation": 100 * summary["validation_ema_error"],
                        "seconds": summary["seconds"],
                    }
    return errors


def pick_records(out: Path, seeds: list[int]) -> dict[str, Any]:
    """What each finished pick recorded (the picks' true classes, the scoring's CPU seconds), by strategy and label set."""
    records = {}
    for seed in seeds:
        for strategy in STRATEGIES:
            record = label_file(out, seed, strategy).with_suffix(".json")
            if record.is_file():
                records[f"{strategy}-s{seed}"] = json.loads(record.read_text())
    return records


def chosen_start(out: Path, tuning_seed: int) -> str | None:
    """The start whose second run on ``random``'s picks of label set ``tuning_seed`` has the lower validation
    error; None until both have finished."""
    errors = _second_errors(out, [tuning_seed])
    if any("random" not in errors.get(start, {}) for start in STARTS):
        return None
    validation = {start: errors[start]["random"][tuning_seed]["validation"] for start in STARTS}
    return min(validation, key=validation.get)


def report(out: Path, seeds: list[int]) -> dict[str, Any]:
    """Test and validation errors per strategy and start; the start and the strategy chosen on validation;
    the paired test gains over ``random`` (random's error minus the strategy's: positive, it picked better)."""
    errors = _second_errors(out, seeds)
    first = {
        seed: read_summary(out / first_job(seed).name)
        for seed in seeds
        if (out / first_job(seed).name / "summary.json").is_file()
    }
    result: dict[str, Any] = {"first": {}, "starts": {}}
    if first:
        result["first"] = {
            "test": mean_std([100 * s["ema_error"] for s in first.values()]),
            "validation": mean_std([100 * s["validation_ema_error"] for s in first.values()]),
            "seconds": mean_std([s["seconds"] for s in first.values()]),
            "per_label_set": {seed: 100 * s["ema_error"] for seed, s in first.items()},
        }
    for start, by_strategy in errors.items():
        rows = {}
        for strategy, runs in by_strategy.items():
            row = {key: mean_std([r[key] for r in runs.values()]) for key in ("test", "validation", "seconds")}
            row["label_sets"] = sorted(runs)
            row["per_label_set"] = {seed: r["test"] for seed, r in runs.items()}
            gain = paired_gain(
                {seed: r["test"] for seed, r in by_strategy.get("random", {}).items()},
                {seed: r["test"] for seed, r in runs.items()},
            )
            if strategy != "random" and gain:
                row["gain_over_random"] = gain
            validation_gain = paired_gain(
                {seed: r["validation"] for seed, r in by_strategy.get("random", {}).items()},
                {seed: r["validation"] for seed, r in runs.items()},
            )
            if strategy != "random" and validation_gain:
                row["validation_gain_over_random"] = validation_gain
            rows[strategy] = row
        result["starts"][start] = rows
    chosen = chosen_start(out, seeds[0])
    if chosen:
        result["start_chosen_on_validation"] = {"start": chosen, "label_set": seeds[0]}
        rows = result["starts"][chosen]
        result["strategy_best_on_validation"] = min(rows, key=lambda s: rows[s]["validation"][0])
    return result


def _gain_cell(gain: dict[str, Any] | None) -> str:
    if not gain:
        return "–"
    ahead = sum(value > 0 for value in gain["values"])
    return f"{gain['gain'][0]:+.2f} ± {gain['gain'][1]:.2f}, ahead on {ahead} of {gain['label_sets']}"


def markdown(result: dict[str, Any], picks: dict[str, Any]) -> str:
    """The table for docs/benchmarks.md: per start and strategy, test and validation error, the paired test
    gain over ``random``, and the scoring's CPU seconds (mean over the label sets)."""
    rows = []
    for start, by_strategy in result["starts"].items():
        for strategy, row in by_strategy.items():
            gain = row.get("gain_over_random")
            seconds = [r["seconds"] for key, r in picks.items() if key.startswith(f"{strategy}-s")]
            spread = len(row["label_sets"]) > 1  # a standard deviation only over several label sets
            rows.append(
                [
                    start,
                    strategy,
                    f"{row['test'][0]:.2f}"
                    + (f" ± {row['test'][1]:.2f}" if spread else "")
                    + f" ({len(row['label_sets'])})",
                    f"{row['validation'][0]:.2f}" + (f" ± {row['validation'][1]:.2f}" if spread else ""),
                    _gain_cell(gain),
                    _gain_cell(row.get("validation_gain_over_random")),
                    f"{sum(seconds) / len(seconds):.0f}" if seconds else "–",
                ]
            )
    header = [
        "start",
        "picked by",
        "test error %",
        "validation error %",
        "test gain over random",
        "validation gain over random",
        "scoring CPU s",
    ]
    return markdown_table(header, rows)


def plot(result: dict[str, Any], path: Path) -> None:
    """Test error per strategy after labeling its picks, one line per label set, from the chosen start;
    the first run's error (250 labels) dashed in the label set's colour."""
    start = result.get("start_chosen_on_validation", {}).get("start")
    if start is None:
        return
    rows = result["starts"][start]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    seeds = sorted({seed for row in rows.values() for seed in row["per_label_set"]})
    for number, seed in enumerate(seeds):
        strategies = [s for s in STRATEGIES if seed in rows.get(s, {}).get("per_label_set", {})]
        errors = [rows[s]["per_label_set"][seed] for s in strategies]
        axis.plot(strategies, errors, marker="o", color=f"C{number}", label=f"label set {seed}")
        if seed in result["first"].get("per_label_set", {}):
            axis.axhline(result["first"]["per_label_set"][seed], color=f"C{number}", linestyle="--", linewidth=1)
    axis.set(
        xlabel="how the 250 images to label were picked",
        ylabel="test error % of the EMA network",
        title=f"CIFAR-10, 250 labels + 250 picked ({start}); dashed: 250 labels",
    )
    axis.legend()
    save_figure(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--phase", choices=("first", "pick", "second", "all", "report"), default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--starts",
        choices=("both", "chosen", *STARTS),
        default="chosen",
        help="second runs from both starts, from the start chosen on the first label set's validation error, "
        "or from one start",
    )
    parser.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES), help="second runs of these, in order"
    )
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.phase in ("first", "all"):
        run_jobs([first_job(seed) for seed in args.seeds], out, args.workers)
    if args.phase in ("pick", "second", "all"):
        for seed in args.seeds:
            if (out / first_job(seed).name / "summary.json").is_file():
                for strategy in STRATEGIES:
                    pick(out, seed, strategy)
    if args.phase in ("second", "all"):
        starts = (args.starts,) if args.starts in STARTS else STARTS
        if args.starts == "chosen":
            run_jobs([second_job(out, args.seeds[0], "random", start) for start in STARTS], out, args.workers)
            chosen = chosen_start(out, args.seeds[0])
            if chosen is None:
                raise SystemExit(
                    f"label set {args.seeds[0]}'s second runs on random's picks, from both starts, must finish first"
                )
            starts = (chosen,)
        jobs = [
            second_job(out, seed, strategy, start)
            for seed in args.seeds
            for start in starts
            for strategy in args.strategies
            if label_file(out, seed, strategy).is_file()
        ]
        run_jobs(jobs, out, args.workers)
    result = report(out, args.seeds)
    print(json.dumps(result, indent=1))
    print(markdown(result, pick_records(out, args.seeds)))
    if args.json:
        command = f"python -m benchmarks.label_next --seeds {' '.join(map(str, args.seeds))}"
        write_result(
            Path(args.json),
            {
                "machine": machine(),
                "date": today(),
                "command": command,
                "picks": pick_records(out, args.seeds),
                **result,
            },
        )
        plot(result, FIGURE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
