"""Run many training runs to completion over any number of starts: finished runs are skipped, killed ones
resumed from their checkpoint (begun again if killed before their first), several run side by side (one
process each, the cores shared out among them), and progress with an ETA is printed as runs finish. Safe
to start again at any time, also while another copy runs (a run being trained is locked by a ``.lock``
file in its directory, holding its process id)."""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meanteacher.config import Config
from meanteacher.run.rundir import read_summary


def tuned_runs_parser(description: str, json_help: str, out: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that tunes at seed 0 and then trains a table over seeds:
    ``--phase tune|table|all|report``, ``--seeds``, ``--workers``, ``--threads``, ``--out`` and ``--json``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=out)
    parser.add_argument(
        "--phase",
        choices=("tune", "table", "all", "report"),
        default="all",
        help="report: no training, the finished runs only",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, help="threads per run (default: the cores shared out among the workers)")
    parser.add_argument("--json", help=json_help)
    return parser


@dataclass
class Job:
    """One run: its directory name under the output folder, its configuration, and the fields that set
    it apart from the other runs of its benchmark (phase, labels, steps, method, seed, learning rate,
    and whatever else it varies). The fields go into its summary; nothing reads them back from the name."""

    name: str
    config: Config
    fields: dict[str, Any] = field(default_factory=dict)


def choose_on_validation(grid: dict[float, dict[str, Any] | None]) -> float | None:
    """The grid value whose finished run has the lowest validation error of its EMA network, the smaller
    value on a tie; None until every run of the grid has finished. The test set is never looked at."""
    if any(summary is None for summary in grid.values()):
        return None
    return min(sorted(grid), key=lambda value: grid[value]["validation_ema_error"])


@dataclass
class Sweep:
    """Tune, then tabulate: each cell's grid of runs at seed 0 (``grid``: cell -> grid value -> job), the
    value chosen on the validation split, then the runs of the table over seeds (``table``: the choices
    made so far -> jobs)."""

    grid: dict[Any, dict[float, Job]]
    table: Callable[[dict[Any, float]], list[Job]]

    def run(
        self, phase: str, out: Path, workers: int, threads: int | None = None
    ) -> tuple[dict[str, dict[str, Any]], dict[Any, float], list[Job]]:
        """Train what ``phase`` (tune, table, all, report) asks, ``workers`` runs side by side with
        ``threads`` each; returns the finished grid runs, the choices and the table's jobs."""
        grid_jobs = [job for jobs in self.grid.values() for job in jobs.values()]
        if phase in ("tune", "all"):
            run_jobs(grid_jobs, out, workers, threads)
        tuning = finished(grid_jobs, out)
        choices = {
            cell: value
            for cell, jobs in self.grid.items()
            if (value := choose_on_validation({v: tuning.get(job.name) for v, job in jobs.items()})) is not None
        }
        table = self.table(choices)
        if phase in ("table", "all"):
            untuned = [str(cell) for cell in self.grid if cell not in choices]
            if untuned:
                print(f"tuning not finished for {', '.join(untuned)}", flush=True)
            run_jobs(table, out, workers, threads)
        return tuning, choices, table


def _claim(run_dir: Path) -> bool:
    """Take the run's lock (a ``.lock`` file holding this process's id); a lock whose process has
    ended (a runner that was killed) is taken over."""
    lock = run_dir / ".lock"
    run_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(lock, "x") as handle:
                handle.write(str(os.getpid()))
            return True
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # its process is alive: another runner trains this run
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)
            except PermissionError:
                return False
    return False


def _train_one(config: dict[str, Any], run_dir: str, threads: int) -> dict[str, Any] | None:
    """Train (or resume) one run in this worker process; None if another runner holds it."""
    import torch

    from meanteacher.run.train import train

    run = Path(run_dir)
    if not _claim(run):
        return None
    try:
        if (run / "summary.json").is_file():  # another runner finished it since this one started
            return read_summary(run)
        resume = (run / "checkpoint.pt").is_file()
        if not resume:  # new, or killed before its first checkpoint: begin it again
            for path in run.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.name != ".lock":
                    path.unlink()
        torch.set_num_threads(threads)
        return train(Config(**config), run, resume=resume, progress=False)
    finally:
        (run / ".lock").unlink(missing_ok=True)


def run_jobs(jobs: list[Job], out: Path, workers: int = 2, threads: int | None = None) -> dict[str, dict[str, Any]]:
    """Train every job not yet finished, ``workers`` side by side with ``threads`` each (default: the
    cores shared out among the workers); returns the summaries of all finished jobs by name."""
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    pending = [job for job in jobs if not (out / job.name / "summary.json").is_file()]
    total_steps = sum(job.config.steps for job in pending)
    print(
        f"{len(jobs) - len(pending)} of {len(jobs)} runs already finished; {len(pending)} to train "
        f"({total_steps} steps) with {workers} workers",
        flush=True,
    )
    started, done_steps, run_seconds = time.perf_counter(), 0, 0.0
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_train_one, job.config.to_dict(), str(out / job.name), threads): job for job in pending}
        for count, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            job = futures[future]
            try:
                summary = future.result()
            except Exception as error:  # noqa: BLE001 - report and go on with the other runs
                print(f"FAILED {job.name}: {error}", file=sys.stderr, flush=True)
                continue
            if summary is None:
                print(f"skipped {job.name}: another runner is training it", flush=True)
                continue
            done_steps += job.config.steps
            elapsed = time.perf_counter() - started
            run_seconds += summary["seconds"]
            running = min(workers, len(futures) - count)  # runs left, training side by side
            eta = run_seconds / done_steps * (total_steps - done_steps) / max(running, 1)
            print(
                f"[{count}/{len(futures)}] {job.name}: EMA error {summary['ema_error']:.2%}, student {summary['student_error']:.2%} "
                f"({summary['seconds']:.0f} s); elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
                flush=True,
            )
    return finished(jobs, out)


def finished(jobs: list[Job], out: Path) -> dict[str, dict[str, Any]]:
    """The summaries of the jobs that have finished, by name, each with the run's learning rate and the
    job's fields added."""
    summaries = {}
    for job in jobs:
        if (out / job.name / "summary.json").is_file():
            summaries[job.name] = read_summary(out / job.name) | {"lr": job.config.lr} | job.fields
    return summaries


RECORD = ("summary.json", "metrics.jsonl", "config.toml")
"""What an archive keeps of a finished run: enough to skip it, tabulate it and plot its curves."""
RESUMABLE = ("checkpoint.pt", "metrics.jsonl", "config.toml", "labels.txt")
"""What an archive keeps of an unfinished run, with ``unfinished=True``: enough to resume it bit for bit."""


def archive(out: Path, destination: Path, unfinished: bool = False) -> int:
    """Write the record of every finished run under ``out`` to a ``.tar.gz`` (atomically), so that the
    runs outlive a machine, and with ``unfinished`` what every checkpointed unfinished run needs to
    resume on another; returns how many runs it holds."""
    import tarfile

    from meanteacher.files import atomic_write

    runs = {p.parent: RECORD for p in out.glob("*/summary.json")}
    if unfinished:
        runs |= {p.parent: RESUMABLE for p in out.glob("*/checkpoint.pt") if p.parent not in runs}

    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w:gz") as tar:
            for run in sorted(runs):
                for name in runs[run]:
                    if (run / name).is_file():
                        tar.add(run / name, arcname=f"{run.name}/{name}")

    atomic_write(destination, write)
    return len(runs)


def restore(source: Path, out: Path) -> int:
    """Unpack an archive made by ``archive`` under ``out``; runs already there (finished, or with a
    checkpoint of their own) are left as they are. Returns how many runs were added."""
    import tarfile

    added = set()
    with tarfile.open(source) as tar:
        for member in tar.getmembers():
            run, _, name = member.name.partition("/")
            if not member.isfile() or name not in RECORD + RESUMABLE or "/" in name or run in ("", ".", ".."):
                continue
            target = out / run / name
            there = (out / run / "summary.json").is_file() or (out / run / "checkpoint.pt").is_file()
            if there and run not in added:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            added.add(run)
    return len(added)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Keep finished runs beyond this machine: archive OUT FILE.tar.gz, or restore FILE.tar.gz OUT."
    )
    parser.add_argument("action", choices=("archive", "restore"))
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--unfinished", action="store_true", help="archive: also what unfinished runs resume from")
    args = parser.parse_args()
    if args.action == "archive":
        print(f"{archive(args.first, args.second, args.unfinished)} runs written to {args.second}")
    else:
        print(f"{restore(args.first, args.second)} runs restored under {args.second}")
