"""What a person looks at after training: mean ± std tables over runs, and learning curves."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .files import atomic_write
from .methods import method_class
from .run.rundir import read_metrics


def ema_name(method: str) -> str:
    """What a method's EMA network is called in tables and plots: Mean Teacher's is its teacher."""
    try:
        return method_class(method).ema_display_name()
    except ValueError:  # a run of a method this process cannot import
        return "EMA"


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
        lines.append(
            f"| {dataset} | {labels} | {method} | {steps} | {len(runs)} | {_percent(ema)} | {_percent(student)} |"
        )
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib's pyplot with the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, out_path: str | Path) -> None:
    """Write ``figure`` as a PNG to ``out_path`` (atomically) and close it."""
    figure.tight_layout()
    atomic_write(out_path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    pyplot().close(figure)


def plot_curves(metrics_path: str | Path, out_path: str | Path, method: str = "") -> None:
    """Figure 3 of the paper for one run: test classification cost and error over steps, of the EMA network
    (named for ``method``: Mean Teacher's is its teacher) and the student; for a run with pseudo-labels, a
    third panel with what FixMatch's users watch: the share of unlabeled images above the threshold, the
    pseudo-labels' accuracy on the hidden labels, and the threshold."""
    plt = pyplot()
    records = read_metrics(metrics_path)
    if not records:
        return
    steps = [r["step"] for r in records]
    pseudo = "pseudo_mask_rate" in records[0]
    figure, axes = plt.subplots(1, 3 if pseudo else 2, figsize=(15 if pseudo else 10, 4))
    cost_axis, error_axis = axes[:2]
    if pseudo:
        _plot_pseudo_labels(axes[2], records)
    for name, label, style in (("ema", ema_name(method), "--"), ("student", "student", "-")):
        if f"{name}_error" not in records[0]:
            continue
        cost_axis.plot(steps, [r[f"{name}_class_cost"] for r in records], style, marker=".", label=f"{label} (test)")
        error_axis.plot(steps, [100 * r[f"{name}_error"] for r in records], style, marker=".", label=label)
    if "class_cost" in records[0]:
        cost_axis.plot(steps, [r["class_cost"] for r in records], ":", marker=".", label="student (training batches)")
    cost_axis.set(xlabel="step", ylabel="classification cost", yscale="log", title="Classification cost")
    error_axis.set(xlabel="step", ylabel="error %", title="Test error")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, out_path)


def _plot_pseudo_labels(axis, records: list[dict]) -> None:
    for key, label, style in (
        ("pseudo_mask_rate", "unlabeled above the threshold", "-"),
        ("pseudo_accuracy", "pseudo-labels right", "--"),
        ("pseudo_threshold", "threshold (mean over classes)", ":"),
    ):
        points = [(r["step"], 100 * r[key]) for r in records if key in r]
        if points:
            axis.plot(*zip(*points), style, marker=".", label=label)
    axis.set(xlabel="step", ylabel="%", ylim=(0, 100), title="Pseudo-labels (training batches)")


def error_curves(run_dirs: list[str | Path], network: str = "ema") -> tuple[list[int], list[list[float]]]:
    """Steps and, per run, the test error (%) of ``network`` at those steps (the steps all runs share)."""
    curves = [
        {
            r["step"]: 100 * r[f"{network}_error"]
            for r in read_metrics(Path(d) / "metrics.jsonl")
            if f"{network}_error" in r
        }
        for d in run_dirs
    ]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return steps, [[c[s] for s in steps] for c in curves]


def plot_comparison(
    groups: dict[str, list[str | Path]], out_path: str | Path, title: str = "", network: str = "ema"
) -> None:
    """Test error of ``network`` over steps for groups of runs (e.g. one group per method, one run
    per seed): the mean over a group's runs as a line, mean ± one standard deviation as a band."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, run_dirs in groups.items():
        steps, errors = error_curves(run_dirs, network)
        if not steps:
            continue
        stats = [mean_std([run[i] for run in errors]) for i in range(len(steps))]
        means = [m for m, _ in stats]
        (line,) = axis.plot(steps, means, marker=".", label=f"{label} ({len(errors)} runs)")
        axis.fill_between(
            steps, [m - s for m, s in stats], [m + s for m, s in stats], color=line.get_color(), alpha=0.2
        )
    axis.set(xlabel="step", ylabel=f"test error % ({network})", title=title)
    axis.grid(alpha=0.3)
    axis.legend()
    save_figure(figure, out_path)


def per_class_errors(confusion: list[list[int]]) -> list[float | None]:
    """Each true class's error rate from a confusion matrix (rows true, columns predicted); None for a
    class with no test images."""
    return [None if sum(row) == 0 else 1.0 - row[k] / sum(row) for k, row in enumerate(confusion)]


def most_confused(confusion: list[list[int]], k: int) -> tuple[int, int] | None:
    """The class that true class ``k`` is most often taken for, and how often; None if never mistaken."""
    count, other = max((count, other) for other, count in enumerate(confusion[k]) if other != k)
    return (other, count) if count else None


def per_class_rows(
    classes: list[str], matrices: dict[str, list[list[int]]], names: dict[str, str]
) -> tuple[list[str], list[list[str]]]:
    """A per-class table of one run: test images, each network's error (%), and what the first network
    mistakes the class for most often."""
    first = next(iter(matrices))
    errors = {name: per_class_errors(matrix) for name, matrix in matrices.items()}
    rows = []
    for k, cls in enumerate(classes):
        confused = most_confused(matrices[first], k)
        rows.append(
            [
                cls,
                str(sum(matrices[first][k])),
                *("–" if errors[name][k] is None else f"{100 * errors[name][k]:.1f}" for name in matrices),
                f"{classes[confused[0]]} ({confused[1]})" if confused else "–",
            ]
        )
    return [
        "class",
        "test images",
        *(f"{names[name]} error %" for name in matrices),
        f"most often taken for ({names[first]})",
    ], rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned for a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return (
        "\n".join(
            "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]
        )
        + "\n"
    )


def per_class_over_runs(runs: list[dict[str, Any]]) -> str:
    """A markdown table of each class's error (%) of the EMA network and of the student, mean ± std over
    ``runs`` (``confusion.json`` contents of runs on the same classes, e.g. one per seed)."""
    classes = runs[0]["classes"]
    lines = ["| class | runs | EMA (teacher) error % | student error % |", "|---|---:|---:|---:|"]
    errors = {name: [per_class_errors(run[name]) for run in runs] for name in ("ema", "student")}
    for k, cls in enumerate(classes):
        cells = {name: [e[k] for e in per_run if e[k] is not None] for name, per_run in errors.items()}
        lines.append(f"| {cls} | {len(runs)} | {_percent(cells['ema'])} | {_percent(cells['student'])} |")
    return "\n".join(lines) + "\n"


def confusion_figure(confusion: list[list[int]], classes: list[str], title: str = ""):
    """A matplotlib figure of a confusion matrix: class names on both axes, the counts written in each
    cell, shading by the share of the true class's images (rows normalised)."""
    plt = pyplot()
    size = max(4.0, 0.45 * len(classes) + 2.0)
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    shares = [[count / max(sum(row), 1) for count in row] for row in confusion]
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted class", ylabel="true class", title=title)
    if len(classes) <= 30:
        for row, counts in enumerate(confusion):
            for column, count in enumerate(counts):
                axis.text(
                    column,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[row][column] > 0.5 else "black",
                )
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    figure.tight_layout()
    return figure


def plot_confusion(confusion: list[list[int]], classes: list[str], out_path: str | Path, title: str = "") -> None:
    """Write ``confusion_figure`` as a PNG (atomically)."""
    save_figure(confusion_figure(confusion, classes, title), out_path)
