"""The defaults of a run on a user's own data, on the shared CIFAR-10 JPEGs, as a user runs it:
``meanteacher train --data DIR --labels N --steps S`` with a narrow ConvNet and bf16 to fit a CPU,
and nothing else set. 100 images per class are held out of training as a validation split.

``choose``: Mean Teacher at 1000 labels and 1000 steps with consistency weight 1 or 3 per class
and a quarter or half of every batch labeled; then, on runs short for their labels, a larger labeled
share; the defaults are picked on validation error.
``verify``: supervised-only and Mean Teacher with the defaults alone at 250, 1000 and 4000 labels and
two budgets. Finished runs are skipped and killed ones resumed (see ``runner``).

The finished runs of both are kept in the repository as ``docs/bench/runs-defaults.tar.gz``
(``python -m benchmarks.runner archive runs/defaults docs/bench/runs-defaults.tar.gz``); on a fresh machine
``python -m benchmarks.runner restore docs/bench/runs-defaults.tar.gz runs/defaults`` brings them back.

    python -m benchmarks.defaults [--phase choose|verify|all|report] [--seeds 0] [--workers 2] [--json docs/bench/defaults.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from meanteacher.config import Config, apply_settings

from .common import SHARED_CIFAR, machine, today
from .runner import Job, finished, run_jobs

USER_RECIPE = {
    "arch_options": {"width": 0.25},
    "precision": "bf16",
    "channels_last": True,
    "validation_per_class": 100,
    "flip": False,
    "eval_every": 500,
    "student_view": "weak",
}
"""What a CPU user sets: a narrow net and bf16 to fit a CPU (channels_last for speed); no flips, an
evaluation every 500 steps and the paper's noise for the student, the defaults when these runs were
trained (the cadence and the student's view are automatic now), so that the recorded runs are the ones
the recipe names."""
CHOICES = {"consistency": (10.0, 30.0), "labeled_per_batch": (25, 50)}
BUDGETS = (500, 1500)
LABELS = (250, 1000, 4000)
LONGER = ((4000, 5000), (4000, 8000))
"""Longer budgets (labels, steps) where the two above are short for the label count; the 5000-step
cell is shared with ``benchmarks.accuracy``."""


OUT = "runs/defaults"
DEFAULT_LR = Config().lr


def recipe_config(**settings) -> Config:
    """The user's recipe (``USER_RECIPE`` on the shared CIFAR-10) with ``settings`` on top."""
    return apply_settings(Config(dataset=str(SHARED_CIFAR)), {**USER_RECIPE, **settings}, "defaults benchmark")


def lr_suffix(lr: float) -> str:
    """What a run's name carries for its learning rate: nothing for the default, ``-lrLR`` otherwise."""
    return "" if lr == DEFAULT_LR else f"-lr{lr:g}"


def recipe_job(labels: int, steps: int, method: str, seed: int, lr: float = DEFAULT_LR) -> Job:
    """One run of the user's recipe; named ``verify-LABELS-STEPS-METHOD-sSEED`` (with ``lr_suffix``),
    a name ``benchmarks.accuracy`` shares for the same run."""
    fields = {"phase": "verify", "labels": labels, "steps": steps, "method": method, "seed": seed, "lr": lr}
    return Job(
        f"verify-{labels}-{steps}-{method}{lr_suffix(lr)}-s{seed}",
        recipe_config(**{k: v for k, v in fields.items() if k != "phase"}),
        fields,
    )


def choose_jobs(seeds: list[int]) -> list[Job]:
    return [
        _job(
            "choose",
            f"choose-c{int(c)}-l{k}-s{seed}",
            labels=1000,
            steps=1000,
            seed=seed,
            consistency=c,
            labeled_per_batch=k,
        )
        for seed in seeds
        for c in CHOICES["consistency"]
        for k in CHOICES["labeled_per_batch"]
    ]


def _job(phase: str, name: str, **settings) -> Job:
    """A run of the user's recipe that sets ``settings`` (Mean Teacher unless they say otherwise)."""
    return Job(name, recipe_config(**settings), {"phase": phase, "method": "mean-teacher", **settings})


SHORT_RUNS = {(1000, 500): (50, 75), (4000, 500): (50, 75, 100), (4000, 1500): (50, 75)}
"""Runs short for their labels (under 50 passes over them at half of each batch) and the labeled
images per batch of 100 tried there, on the validation split."""


def share_jobs(seeds: list[int]) -> list[Job]:
    """Mean Teacher with each labeled share of ``SHORT_RUNS`` (and, at 4000 labels and 1500 steps, a
    consistency weight of 1 per class instead of 3 as the other way to let the labels through)."""
    jobs = [
        _job(
            "share", f"share-{labels}-{steps}-l{k}-s{seed}", labels=labels, steps=steps, seed=seed, labeled_per_batch=k
        )
        for seed in seeds
        for (labels, steps), shares in SHORT_RUNS.items()
        for k in shares
    ]
    return jobs + [
        _job(
            "share",
            f"share-4000-1500-l50-c10-s{seed}",
            labels=4000,
            steps=1500,
            seed=seed,
            labeled_per_batch=50,
            consistency=10.0,
        )
        for seed in seeds
    ]


def verify_jobs(seeds: list[int]) -> list[Job]:
    cells = [(labels, steps) for steps in BUDGETS for labels in LABELS] + list(LONGER)
    return [
        recipe_job(labels, steps, method, seed)
        for labels, steps in cells
        for seed in seeds
        for method in ("supervised", "mean-teacher")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=OUT)
    parser.add_argument(
        "--phase",
        choices=("choose", "verify", "all", "report"),
        default="all",
        help="report: no training, the finished runs only",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write every finished run's summary here")
    args = parser.parse_args(argv)
    jobs = (choose_jobs(args.seeds) + share_jobs(args.seeds) if args.phase in ("choose", "all", "report") else []) + (
        verify_jobs(args.seeds) if args.phase != "choose" else []
    )
    summaries = (
        finished(jobs, Path(args.out)) if args.phase == "report" else run_jobs(jobs, Path(args.out), args.workers)
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": summaries, "machine": machine(), "date": today()}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
