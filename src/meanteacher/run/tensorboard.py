"""TensorBoard event files for a run (``--set tensorboard=true``): the scalars of every logged step and
the final confusion matrix as an image, in ``RUN_DIR/tensorboard``; ``tensorboard --logdir runs`` shows them.

Needs the ``tensorboard`` package (``pip install 'meanteacher[tensorboard]'``) only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MeanTeacherError


def summary_writer() -> type:
    """torch's ``SummaryWriter``; a one-line error naming the extra when ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MeanTeacherError(
            "tensorboard=true needs the tensorboard package: pip install 'meanteacher[tensorboard]'"
        ) from None
    return SummaryWriter


def _tag(key: str) -> str:
    """Scalars grouped as TensorBoard shows them: errors, costs, and the schedules (learning rate,
    consistency weight, EMA decay)."""
    group = "error" if key.endswith("_error") else "cost" if key.endswith("_cost") else "schedule"
    return f"{group}/{key}"


class TensorBoardLog:
    """Writes a run's records as TensorBoard scalars and its confusion matrices as images. ``resume_step``:
    events after it (written by a run that was killed later) are dropped, as ``metrics.jsonl`` drops them."""

    def __init__(self, folder: str | Path, resume_step: int | None = None) -> None:
        self.writer = summary_writer()(str(folder), purge_step=resume_step)

    def scalars(self, record: dict[str, Any]) -> None:
        """Every number of one ``metrics.jsonl`` record, at its step."""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(_tag(key), value, record["step"])

    def confusion(
        self, matrices: dict[str, list[list[int]]], classes: list[str], names: dict[str, str], step: int
    ) -> None:
        """Each network's confusion matrix as an image (see ``report.confusion_figure``)."""
        from ..report import confusion_figure

        for name, matrix in matrices.items():
            self.writer.add_figure(f"confusion/{name}", confusion_figure(matrix, classes, names.get(name, name)), step)

    def close(self) -> None:
        self.writer.close()
