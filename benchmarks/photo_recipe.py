"""The recipe of a short run on a small folder of photos, chosen on a validation split: which automatic
settings make Mean Teacher worth its cost at 100 labels and the steps 10 minutes buy on 2 CPU cores.

The tuning folder is built like the photo benchmark's (``benchmarks.photos``) from other CIFAR-10
training images, so no image of that benchmark is seen here: ``tune/train/<class>/`` holds the
``TRAIN_PER_CLASS`` images of each class that follow the benchmark's ``PER_CLASS`` (as many as a run on
that folder trains on: it holds out every ``HELD_OUT_EVERY``-th image as its test set),
``tune/val/<class>/`` the ``VALIDATION_PER_CLASS`` after those; all upscaled to 160 x 120. A run's "test" error on this
folder is its validation error. Each recipe runs at the steps a
10-minute run of its method plans on this machine (``STEPS``), with every other setting automatic.

    python -m benchmarks.photo_recipe [--phase train|report] [--seeds 0 1 2] [--recipes NAME ...] [--json docs/bench/photo_recipe.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meanteacher.config import Config
from meanteacher.data.folders import HELD_OUT_EVERY
from meanteacher.report import mean_std

from .common import SHARED_CIFAR, machine, markdown_table, today, write_result
from .photos import PER_CLASS, make_photos
from .runner import Job, finished, run_jobs

OUT = "runs/photo-recipe"
LABELS = 100
TRAIN_PER_CLASS = PER_CLASS - PER_CLASS // HELD_OUT_EVERY
VALIDATION_PER_CLASS = 100
STEPS = {"mean-teacher": 1000, "supervised": 1500}
"""What ``--time 10m`` plans on the photo folder on 2 AVX2 cores (docs/bench/photos.json: 911 to 1,039
Mean Teacher steps, 1,439 to 1,577 supervised ones)."""
RECIPES = {
    "weak-student": {"student_view": "weak"},
    "steady-teacher": {"student_view": "weak", "consistency": 100.0, "ema_decay": 0.99, "ema_decay_rampup": 0.99},
    "strong-student": {"student_view": "strong"},
    "light-consistency": {"student_view": "strong", "consistency": 10.0},
    "heavy-consistency": {"student_view": "strong", "consistency": 100.0},
    "mild-strong-student": {"student_view": "strong", "strong_magnitude": 0.5},
    "mostly-unlabeled": {"student_view": "strong", "labeled_per_batch": 25},
    "strong-student-250-labels": {"student_view": "strong", "labels": 250},
}
"""Name -> settings on top of the automatic ones. ``weak-student``: the paper's noise for both networks;
``steady-teacher``: that, with the paper's CIFAR-10 weight of 100 and an EMA over about 100 steps (a
tenth of the run) instead of a fiftieth of the run; ``strong-student``: the strong view for the student
(``data/strong.py``) and everything else automatic; ``light-consistency`` and ``heavy-consistency``:
the strong student with a consistency weight of 10 or of the paper's CIFAR-10 100 instead of the
automatic 3 per class (30 here); ``mild-strong-student``: the strong view at half its magnitude, the
magnitude CIFAR-10 validation chose for both methods at 1000 labels (``benchmarks.strong``);
``mostly-unlabeled``: the strong student with a quarter of each batch labeled instead of the automatic
half, so more of each step goes to the consistency cost on unlabeled images; ``strong-student-250-labels``:
the strong student with 250 labels instead of ``LABELS``, where Mean Teacher might pull ahead in the
same time."""
TEACHER_ONLY = {"steady-teacher", "light-consistency", "heavy-consistency", "mostly-unlabeled"}
"""Recipes that change nothing a run without a teacher uses: supervised-only does not run them."""


def make_tuning_folder(work: Path) -> Path:
    """The tuning folder under ``work`` (made once); returns its path."""
    folder = work / "tune"
    make_photos(SHARED_CIFAR, folder / "train", TRAIN_PER_CLASS, skip=PER_CLASS)
    make_photos(SHARED_CIFAR, folder / "val", VALIDATION_PER_CLASS, skip=PER_CLASS + TRAIN_PER_CLASS)
    return folder


def recipe_jobs(folder: Path, seeds: list[int], recipes: list[str]) -> list[Job]:
    jobs = []
    for seed in seeds:
        for method in ("supervised", "mean-teacher"):
            for recipe in recipes:
                if method == "supervised" and recipe in TEACHER_ONLY:
                    continue
                settings = {"labels": LABELS, **RECIPES[recipe]}
                config = Config(dataset=str(folder), steps=STEPS[method], seed=seed, method=method, **settings)
                jobs.append(
                    Job(
                        f"{method}-{recipe}-s{seed}",
                        config,
                        {
                            "method": method,
                            "recipe": recipe,
                            "seed": seed,
                            "labels": config.labels,
                            "steps": STEPS[method],
                        },
                    )
                )
    return jobs


def baselines(recipe: str) -> set[str]:
    """What a Mean Teacher recipe is compared with: supervised-only with the same student view (kind and
    magnitude) and labels, and with the weak student where the labels are ``LABELS``; for a recipe that
    changes the teacher's settings, also Mean Teacher with that view and automatic settings."""

    def view(name: str) -> tuple[str, float, int]:
        return (
            RECIPES[name]["student_view"],
            RECIPES[name].get("strong_magnitude", 1.0),
            RECIPES[name].get("labels", LABELS),
        )

    same_view = [name for name in RECIPES if name not in TEACHER_ONLY and view(name) == view(recipe)]
    weak = {"supervised/weak-student"} if view(recipe)[2] == LABELS else set()
    return (
        weak
        | {f"supervised/{name}" for name in same_view}
        | ({f"mean-teacher/{name}" for name in same_view} if recipe in TEACHER_ONLY else set())
    )


def verdict(runs: dict[str, dict]) -> dict:
    """Validation error of the EMA network per method and recipe, and each Mean Teacher recipe's paired
    gains over its ``baselines``, on the label sets where both finished."""
    cells: dict[str, dict] = {}
    for run in runs.values():
        cells.setdefault(f"{run['method']}/{run['recipe']}", {})[run["seed"]] = run["ema_error"] * 100
    out = {
        name: {"label_sets": len(errors), "validation_error": mean_std(list(errors.values()))}
        for name, errors in sorted(cells.items())
    }
    for name, errors in cells.items():
        method, recipe = name.split("/")
        if method != "mean-teacher":
            continue
        for baseline in sorted(baselines(recipe) & cells.keys()):
            seeds = sorted(errors.keys() & cells[baseline].keys())
            gains = [cells[baseline][s] - errors[s] for s in seeds]
            out[name][f"gain_over_{baseline}"] = {
                "label_sets": len(seeds),
                "gain": mean_std(gains),
                "wins": sum(g > 0 for g in gains),
            }
    return out


def table(result: dict) -> str:
    """One row per method and recipe: validation error, and Mean Teacher's paired gains over supervised-only."""
    rows = []
    for name, cell in result["verdict"].items():
        error = cell["validation_error"]
        gains = [
            f"{g['gain'][0]:+.2f} ± {g['gain'][1]:.2f} over {key.removeprefix('gain_over_')} ({g['wins']}/{g['label_sets']})"
            for key, g in cell.items()
            if key.startswith("gain_over_")
        ]
        rows.append([name, cell["label_sets"], f"{error[0]:.2f} ± {error[1]:.2f}", "; ".join(gains) or "–"])
    return markdown_table(
        ["method/recipe", "label sets", "validation error of the EMA network (%)", "paired gain (points; wins)"], rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("train", "report"), default="train")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--work", type=Path, default=Path("/tmp/photos-bench"))
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="runs side by side, sharing the cores (default 1: on 2 cores a Mean Teacher run alone with both threads "
        "took 666 s, two side by side with a thread each 2,108 s each)",
    )
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    jobs = recipe_jobs(make_tuning_folder(args.work), args.seeds, args.recipes)
    runs = finished(jobs, Path(args.out)) if args.phase == "report" else run_jobs(jobs, Path(args.out), args.workers)
    result = {
        "machine": machine(),
        "date": today(),
        "command": f"python -m benchmarks.photo_recipe --seeds {' '.join(map(str, args.seeds))}",
        "runs": runs,
        "verdict": verdict(runs),
    }
    print(table(result))
    if args.json:
        write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
