"""Horizontal flips for colour photos, chosen on the validation split: the evidence for ``flip``'s
automatic value (on for colour images) in a run without a preset.

Mean Teacher on the shared CIFAR-10 JPEGs as a user runs it (``--labels 1000 --steps 400``, every other
setting automatic but for one evaluation, at the end), 100 images per class held out as the validation
split, with and without flips, on ``--seeds`` label sets; the choice is made on validation error alone
(paired over label sets).

    python -m benchmarks.flip [--phase train|report] [--seeds 0 1 2] [--workers 2] [--json docs/bench/flip.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from meanteacher.config import Config
from meanteacher.report import mean_std

from .common import SHARED_CIFAR, machine, markdown_table, today
from .runner import Job, finished, run_jobs

OUT = "runs/flip"
LABELS, STEPS = 1000, 400


def flip_jobs(seeds: list[int]) -> list[Job]:
    return [
        Job(
            f"flip-{'on' if flip else 'off'}-s{seed}",
            Config(
                dataset=str(SHARED_CIFAR),
                labels=LABELS,
                steps=STEPS,
                seed=seed,
                flip=flip,
                validation_per_class=100,
                eval_every=STEPS,
                student_view="weak",
            ),
            {"labels": LABELS, "steps": STEPS, "seed": seed, "flip": flip, "method": "mean-teacher"},
        )
        for seed in seeds
        for flip in (True, False)
    ]


def verdict(runs: dict[str, dict]) -> dict:
    """Validation and test errors with and without flips, paired over the label sets where both finished."""
    seeds = sorted({run["seed"] for run in runs.values()})
    pairs = [
        (runs[f"flip-on-s{s}"], runs[f"flip-off-s{s}"])
        for s in seeds
        if f"flip-on-s{s}" in runs and f"flip-off-s{s}" in runs
    ]
    out = {"label_sets": len(pairs)}
    for key in ("validation_ema_error", "ema_error"):
        out[key] = {
            "on": mean_std([on[key] * 100 for on, _ in pairs]),
            "off": mean_std([off[key] * 100 for _, off in pairs]),
            "gain": mean_std([(off[key] - on[key]) * 100 for on, off in pairs]),
        }
    out["flip_wins_on_validation"] = sum(on["validation_ema_error"] < off["validation_ema_error"] for on, off in pairs)
    return out


def table(result: dict) -> str:
    """Validation (used to choose) and test errors of the EMA network, with and without flips."""
    rows = []
    for key, what in (("validation_ema_error", "validation"), ("ema_error", "test")):
        cell = result["verdict"][key]
        rows.append([what, *(f"{cell[side][0]:.2f} ± {cell[side][1]:.2f}" for side in ("on", "off", "gain"))])
    return markdown_table(
        ["error of the EMA network (%)", "flips on", "flips off", "gain of flips (points, paired)"], rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("train", "report"), default="train")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    jobs = flip_jobs(args.seeds)
    runs = finished(jobs, Path(args.out)) if args.phase == "report" else run_jobs(jobs, Path(args.out), args.workers)
    result = {
        "machine": machine(),
        "date": today(),
        "command": "python -m benchmarks.flip --seeds " + " ".join(map(str, args.seeds)),
        "runs": runs,
        "verdict": verdict(runs),
    }
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
