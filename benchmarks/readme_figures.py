"""The guide's "After a run" pictures, from one finished run trained with ``--tensorboard``:

    python -m benchmarks.readme_figures RUN_DIR

writes ``docs/after-run-curves.png`` (the run's own ``curves.png``), ``docs/after-run-confusion.png``
(what ``meanteacher evaluate`` draws) and ``docs/after-run-tensorboard.png`` (the scalars of the run's
event files, read back with TensorBoard's own reader).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from meanteacher.report import ema_name, plot_confusion, pyplot, save_figure
from meanteacher.run.rundir import RunDirectory, read_confusion

DOCS = Path(__file__).resolve().parents[1] / "docs"
PANELS = (
    ("error", ("error/ema_error", "error/student_error")),
    ("cost", ("cost/class_cost", "cost/consistency_cost")),
    ("schedule", ("schedule/lr", "schedule/consistency_weight", "schedule/ema_decay")),
)


def main(argv: list[str] | None = None) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = Path((argv if argv is not None else sys.argv[1:])[0])
    method = RunDirectory(run).read_config().method
    shutil.copyfile(run / "curves.png", DOCS / "after-run-curves.png")
    confusion = read_confusion(run)
    plot_confusion(
        confusion["ema"], confusion["classes"], DOCS / "after-run-confusion.png", f"{ema_name(method)}, test images"
    )
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    plt = pyplot()
    figure, axes = plt.subplots(1, len(PANELS), figsize=(13, 3.6))
    for axis, (title, tags) in zip(axes, PANELS):
        for tag in tags:
            points = events.Scalars(tag)
            axis.plot([p.step for p in points], [p.value for p in points], marker=".", label=tag)
        axis.set(xlabel="step", title=title, yscale="log" if title == "schedule" else "linear")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    save_figure(figure, DOCS / "after-run-tensorboard.png")
    print(f"wrote {DOCS}/after-run-{{curves,confusion,tensorboard}}.png from {run}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
