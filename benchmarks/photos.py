"""A folder of ordinary photos trained for a time, as a new user runs it: ``meanteacher train --data photos
--labels 100 --time 10m``, Mean Teacher against ``--method supervised`` on 3 label sets, and the same
command for 2 and 5 minutes; with no flag but ``--labels``, how soon the run says something.

The folder is made from the shared CIFAR-10 JPEGs: the first ``PER_CLASS`` training images of each class,
upscaled to 160 x 120 and saved as JPEGs in ``photos/<class>/``, with no test folder (the run holds out
every 5th image, ``data.folders.HELD_OUT_EVERY``, as its test set, as it does for any folder without one). Each run is a fresh
``python -m meanteacher`` process; the times are from its start: to the plan line, to the first line with
an estimate, and to its exit. Runs already recorded in the JSON are skipped, so the benchmark resumes; each
records its machine, and only runs of one machine are paired. ``RECIPES`` adds confident pseudo-labels.

    python -m benchmarks.photos [--work /tmp/photos-bench] [--json docs/bench/photos.json] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from meanteacher.files import atomic_write_text
from meanteacher.report import mean_std
from meanteacher.run.rundir import read_summary

from .common import SHARED_CIFAR, machine, markdown_table, today

PER_CLASS = 250
PHOTO_SIZE = (160, 120)
SEEDS = (0, 1, 2)
FIRST_WORDS_SECONDS = 120.0
"""The run with no ``--time`` (150,000 steps) is stopped once it has corrected its first estimate, or after this long."""


def make_photos(archive: Path, out: Path, per_class: int = PER_CLASS, skip: int = 0) -> int:
    """Write a photo folder (``out/<class>/NNNN.jpg``) unless it is complete: the training images of each
    class (by name) after the first ``skip``, ``per_class`` of them, upscaled to ``PHOTO_SIZE``; returns
    its image count."""
    from PIL import Image

    if out.is_dir() and sum(1 for _ in out.glob("*/*.jpg")) == 10 * per_class:
        return 10 * per_class
    with tarfile.open(archive) as tar:
        train = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.split("/")[-3:-2] == ["train"]), key=lambda m: m.name
        )
        wanted: dict[str, str] = {}  # member name -> destination
        seen: dict[str, int] = {}
        for member in train:
            cls = member.name.split("/")[-2]
            index = seen.get(cls, 0) - skip
            seen[cls] = seen.get(cls, 0) + 1
            if 0 <= index < per_class:
                wanted[member.name] = f"{cls}/{index:04d}.jpg"
        for member in tar.getmembers():  # in archive order: one pass over the compressed stream
            if member.name in wanted:
                image = (
                    Image.open(io.BytesIO(tar.extractfile(member).read()))
                    .convert("RGB")
                    .resize(PHOTO_SIZE, Image.BICUBIC)
                )
                (out / wanted[member.name]).parent.mkdir(parents=True, exist_ok=True)
                image.save(out / wanted[member.name], quality=90)
    return len(wanted)


FULL_BATCH = ["--batch-size", "200", "--labeled-per-batch", "100"]
RECIPES = {
    "pseudo-labels": ["--method", "mean-teacher", "--consistency-type", "pseudo:0.8", *FULL_BATCH],
    "fixmatch": ["--method", "fixmatch", "--consistency-type", "pseudo:0.95", *FULL_BATCH],
}
"""Rows beside the two methods' defaults, by name: Mean Teacher with confident pseudo-labels and FixMatch,
each with supervised-only's whole batch of labeled images and as many unlabeled ones, at the thresholds
the CIFAR-10 validation split chose (``benchmarks.pseudo``)."""


def jobs() -> dict[str, tuple[list[str], dict]]:
    """Name -> (arguments after ``meanteacher train``, fields), in the order they run: label set by label set."""
    out: dict[str, tuple[list[str], dict]] = {"no-flags": ([], {"method": "mean-teacher", "minutes": None, "seed": 0})}
    for seed in SEEDS:
        for method in ("mean-teacher", "supervised"):
            out[f"{method}-10m-seed{seed}"] = (
                ["--time", "10m", "--seed", str(seed), "--method", method],
                {"method": method, "minutes": 10, "seed": seed},
            )
        for recipe, arguments in RECIPES.items():
            out[f"{recipe}-10m-seed{seed}"] = (
                ["--time", "10m", "--seed", str(seed), *arguments],
                {"method": recipe, "minutes": 10, "seed": seed},
            )
    for minutes in (2, 5):
        out[f"mean-teacher-{minutes}m-seed0"] = (
            ["--time", f"{minutes}m", "--seed", "0"],
            {"method": "mean-teacher", "minutes": minutes, "seed": 0},
        )
    return out


def run_one(work: Path, name: str, arguments: list[str]) -> dict:
    """Train one run in a fresh process from ``work`` (where ``photos/`` is); the times of its lines."""
    run_dir = work / "runs" / name
    command = [
        sys.executable,
        "-m",
        "meanteacher",
        "train",
        "--data",
        "photos",
        "--labels",
        "100",
        *arguments,
        "--out",
        str(run_dir),
    ]
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[tuple[float, str]] = []
    for line in process.stdout:
        lines.append((round(time.perf_counter() - start, 2), line.rstrip()))
        if not arguments and (line.startswith("steps 2-") or time.perf_counter() - start > FIRST_WORDS_SECONDS):
            break
    if process.poll() is None and not arguments:
        process.terminate()
    process.wait()
    seconds = round(time.perf_counter() - start, 1)
    plan = next((t for t, text in lines if " on photos: " in text), None)
    estimate = next((t for t, text in lines if "to go" in text), None)
    result = {
        "command": "meanteacher " + " ".join(command[3:]).replace(str(run_dir), f"runs/{name}"),
        "wall_seconds": seconds,
        "plan_seconds": plan,
        "estimate_seconds": estimate,
        "first_lines": [text for _, text in lines[:6]],
    }
    if arguments:
        summary = read_summary(run_dir)
        if summary is None:
            raise RuntimeError(f"{name}: no summary; its output ended with: {lines[-3:]}")
        result.update(
            {
                key: summary.get(key)
                for key in (
                    "steps",
                    "ema_error",
                    "student_error",
                    "seconds",
                    "eval_seconds",
                    "checkpoint_seconds",
                    "train_seconds",
                )
            }
        )
        metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
        result["evaluations"] = len(metrics)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/photos-bench"))
    parser.add_argument("--json", type=Path, default=Path("docs/bench/photos.json"))
    parser.add_argument("--only", nargs="+", help="run these jobs only (names as in the JSON)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"photo folder: {make_photos(SHARED_CIFAR, args.work / 'photos')} images", flush=True)
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results.update(
        {"machine": machine(), "date": today(), "threads": os.cpu_count(), "command": "python -m benchmarks.photos"}
    )
    runs = results.setdefault("runs", {})
    for name, (arguments, fields) in jobs().items():
        if name in runs or (args.only and name not in args.only):
            continue
        print(f"{name} ...", flush=True)
        runs[name] = {**fields, **run_one(args.work, name, arguments), "date": today(), "machine": machine()}
        print(f"{name}: {json.dumps(runs[name])}", flush=True)
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def paired(results: dict, row: str = "mean-teacher") -> dict | None:
    """``row`` (a method or a recipe) against supervised-only at 10 minutes, over the label sets where both
    finished on the same machine: EMA errors and supervised-only's minus the row's (positive: the row is better)."""
    runs = results["runs"]
    pairs = [
        (runs[f"{row}-10m-seed{s}"]["ema_error"], runs[f"supervised-10m-seed{s}"]["ema_error"])
        for s in SEEDS
        if f"{row}-10m-seed{s}" in runs
        and f"supervised-10m-seed{s}" in runs
        and runs[f"{row}-10m-seed{s}"].get("machine") == runs[f"supervised-10m-seed{s}"].get("machine")
    ]
    if not pairs:
        return None
    return {
        "label_sets": len(pairs),
        "row": mean_std([m for m, _ in pairs]),
        "supervised": mean_std([s for _, s in pairs]),
        "gain": mean_std([s - m for m, s in pairs]),
        "wins": sum(m < s for m, s in pairs),
    }


def planned_steps(run: dict) -> int | None:
    """The steps the run planned before it started (its time-budget line), or None."""
    line = next((text for text in run["first_lines"] if text.startswith("time budget")), "")
    match = re.search(r"so the run takes ([\d,]+) steps", line)
    return int(match.group(1).replace(",", "")) if match else None


def table(results: dict) -> str:
    """One row per run: time asked and taken, steps planned and trained, evaluations, errors."""
    rows = []
    for _name, run in results["runs"].items():
        asked = f"{run['minutes']} min" if run["minutes"] else "(no --time)"
        taken = f"{run['wall_seconds'] / 60:.2f} min" if run["minutes"] else "stopped"
        off = f"{100 * (run['wall_seconds'] / (60 * run['minutes']) - 1):+.1f} %" if run["minutes"] else "–"
        planned = planned_steps(run)
        steps = (
            "–"
            if "steps" not in run
            else f"{run['steps']:,}"
            if planned in (None, run["steps"])
            else f"{planned:,} → {run['steps']:,}"
        )
        rows.append(
            [
                run["method"],
                run["seed"],
                asked,
                taken,
                off,
                steps,
                run.get("evaluations", "–"),
                run["plan_seconds"],
                run["estimate_seconds"],
                f"{100 * run['ema_error']:.1f}" if run.get("ema_error") is not None else "–",
                f"{100 * run['student_error']:.1f}" if run.get("student_error") is not None else "–",
            ]
        )
    return markdown_table(
        [
            "method",
            "label set",
            "time asked",
            "took",
            "off by",
            "steps (planned → refitted)",
            "evaluations",
            "plan line (s)",
            "first estimate (s)",
            "EMA error (%)",
            "student error (%)",
        ],
        rows,
    )


if __name__ == "__main__":
    raise SystemExit(main())
