"""What a person looks at after training: mean ± std tables over runs, and learning curves."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .errors import MeanTeacherError
from .files import atomic_write


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's ``summary.json``; a clear error if it has none."""
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MeanTeacherError(f"{run_dir}: no summary.json (the run has not finished)") from None
    except json.JSONDecodeError as error:
        raise MeanTeacherError(f"{path}: not valid JSON ({error})") from None


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def aggregate(summaries: list[dict[str, Any]]) -> str:
    """A markdown table of test error (%) as mean ± std over seeds, one row per dataset, labels and method."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for summary in summaries:
        groups[(summary["dataset"], summary["labels"], summary["method"], summary["steps"])].append(summary)
    lines = [
        "| dataset | labels | method | steps | runs | student error % | teacher error % |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for (dataset, labels, method, steps), runs in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])):
        student = [r["student_error"] for r in runs if r.get("student_error") is not None]
        teacher = [r["teacher_error"] for r in runs if r.get("teacher_error") is not None]
        lines.append(f"| {dataset} | {labels} | {method} | {steps} | {len(runs)} | {_mean_std(student)} | {_mean_std(teacher)} |")
    return "\n".join(lines) + "\n"


def plot_curves(metrics_path: str | Path, out_path: str | Path) -> None:
    """Figure 3 of the paper for one run: test classification cost and error over steps, student and teacher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    if not records:
        return
    steps = [r["step"] for r in records]
    figure, (cost_axis, error_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("student", "-"), ("teacher", "--")):
        if f"{name}_error" not in records[0]:
            continue
        cost_axis.plot(steps, [r[f"{name}_class_cost"] for r in records], style, marker=".", label=f"{name} (test)")
        error_axis.plot(steps, [100 * r[f"{name}_error"] for r in records], style, marker=".", label=name)
    if "class_cost" in records[0]:
        cost_axis.plot(steps, [r["class_cost"] for r in records], ":", marker=".", label="student (training batches)")
    cost_axis.set(xlabel="step", ylabel="classification cost", yscale="log", title="Classification cost")
    error_axis.set(xlabel="step", ylabel="error %", title="Test error")
    for axis in (cost_axis, error_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    atomic_write(out_path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    plt.close(figure)


def plot_comparison(runs: dict[str, str | Path], out_path: str | Path, title: str = "") -> None:
    """Test error over steps of several runs on one axis (e.g. supervised-only vs Mean Teacher)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, run_dir in runs.items():
        records = read_metrics(Path(run_dir) / "metrics.jsonl")
        steps = [r["step"] for r in records]
        for name, style in (("student", "-"), ("teacher", "--")):
            if records and f"{name}_error" in records[0]:
                axis.plot(steps, [100 * r[f"{name}_error"] for r in records], style, marker=".", label=f"{label}: {name}")
    axis.set(xlabel="step", ylabel="test error %", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    atomic_write(out_path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    plt.close(figure)
