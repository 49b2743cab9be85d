"""What a person looks at after training: mean ± std tables over runs, and learning curves."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .files import atomic_write
from .run.rundir import read_metrics


def ema_name(method: str) -> str:
    """What a method's EMA network is called in tables: Mean Teacher's is its teacher."""
    return "teacher (EMA)" if method == "mean-teacher" else "EMA"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _percent(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{100 * mean:.2f}"
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def aggregate(summaries: list[dict[str, Any]]) -> str:
    """A markdown table of test error (%) as mean ± std over seeds, one row per dataset, labels, method
    and steps: the EMA network (Mean Teacher's teacher; every method is evaluated on EMA weights, as
    in the paper) and the raw student."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for summary in summaries:
        groups[(summary["dataset"], summary["labels"], summary["method"], summary["steps"])].append(summary)
    lines = [
        "| dataset | labels | method | steps | runs | EMA (teacher) error % | student error % |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for (dataset, labels, method, steps), runs in sorted(groups.items(), key=lambda item: item[0]):
        ema = [r["ema_error"] for r in runs if r.get("ema_error") is not None]
        student = [r["student_error"] for r in runs if r.get("student_error") is not None]
        lines.append(f"| {dataset} | {labels} | {method} | {steps} | {len(runs)} | {_percent(ema)} | {_percent(student)} |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, out_path: str | Path) -> None:
    figure.tight_layout()
    atomic_write(out_path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    _pyplot().close(figure)


def plot_curves(metrics_path: str | Path, out_path: str | Path) -> None:
    """Figure 3 of the paper for one run: test classification cost and error over steps, EMA and student."""
    plt = _pyplot()
    records = read_metrics(metrics_path)
    if not records:
        return
    steps = [r["step"] for r in records]
    figure, (cost_axis, error_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("ema", "--"), ("student", "-")):
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
    _save(figure, out_path)


def error_curves(run_dirs: list[str | Path], network: str = "ema") -> tuple[list[int], list[list[float]]]:
    """Steps and, per run, the test error (%) of ``network`` at those steps (the steps all runs share)."""
    curves = [{r["step"]: 100 * r[f"{network}_error"] for r in read_metrics(Path(d) / "metrics.jsonl") if f"{network}_error" in r}
              for d in run_dirs]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return steps, [[c[s] for s in steps] for c in curves]


def plot_comparison(groups: dict[str, list[str | Path]], out_path: str | Path, title: str = "", network: str = "ema") -> None:
    """Test error of ``network`` over steps for groups of runs (e.g. one group per method, one run
    per seed): the mean over a group's runs as a line, mean ± one standard deviation as a band."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, run_dirs in groups.items():
        steps, errors = error_curves(run_dirs, network)
        if not steps:
            continue
        stats = [mean_std([run[i] for run in errors]) for i in range(len(steps))]
        means = [m for m, _ in stats]
        line, = axis.plot(steps, means, marker=".", label=f"{label} ({len(errors)} runs)")
        axis.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats], color=line.get_color(), alpha=0.2)
    axis.set(xlabel="step", ylabel=f"test error % ({network})", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    _save(figure, out_path)
