"""Shared helpers of the benchmarks: timing with medians, the machine's description, markdown output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch

from meanteacher.files import atomic_write_text

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
"""The CIFAR-10 JPEG copy every developer and CI have beside the checkout."""


def median_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """A one-line description of where a benchmark ran."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def today() -> str:
    return date.today().isoformat()


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` as JSON to ``path`` (whole or not at all), keeping the ``notes`` already there:
    the reading written beside the figures outlives a re-run that refreshes them."""
    if path.is_file():
        result = {**result, "notes": json.loads(path.read_text()).get("notes", "")}
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def paired_gain(baseline: dict[Any, float], errors: dict[Any, float]) -> dict[str, Any] | None:
    """The baseline's error minus the row's on each label set both have (positive: the row is better):
    how many, their mean ± std and the values; None where they share none."""
    from meanteacher.report import mean_std

    paired = sorted(set(errors) & set(baseline))
    if not paired:
        return None
    gains = [baseline[s] - errors[s] for s in paired]
    return {"label_sets": len(paired), "gain": mean_std(gains), "values": gains}
