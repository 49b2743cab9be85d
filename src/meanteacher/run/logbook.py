"""What a run writes at each evaluation: the mean of the training logs since the last one, the
evaluation's results, into ``metrics.jsonl`` (and TensorBoard), the last one's confusion matrices into
``confusion.json``; the dead-teacher guard looks at each record."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .guard import DeadTeacherGuard
from .rundir import RunDirectory


class Logbook:
    """The logs of the steps since the last evaluation (summed on the device: no host read per step),
    and the run's records. ``tensorboard``: a ``TensorBoardLog`` while a run with ``tensorboard=true``
    trains (see ``open_tensorboard``)."""

    def __init__(self, run_dir: RunDirectory, classes: list[str], ema_name: str, guard: DeadTeacherGuard) -> None:
        self.run_dir, self.classes, self.ema_name, self.guard = run_dir, classes, ema_name, guard
        self.sums: dict[str, float | torch.Tensor] = {}
        self.count = 0
        self.tensorboard: Any = None

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        """One step's detached cost terms."""
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float()
        self.count += 1

    def record(self, step: int, results: dict[str, Any]) -> dict[str, Any]:
        """The record of an evaluation at ``step``: the mean logs since the last one (then begun anew) and
        the evaluation's ``results``; of the confident pseudo-labels whose hidden label is known, the share right."""
        record = {"step": step, **{k: float(v) / self.count for k, v in self.sums.items()}, **results}
        self.sums, self.count = {}, 0
        if record.get("pseudo_checked_rate"):
            record["pseudo_accuracy"] = record["pseudo_correct_rate"] / record["pseudo_checked_rate"]
        return record

    def write(self, record: dict[str, Any], models: dict[str, nn.Module], ema_is_teacher: bool) -> None:
        """Write ``record`` (its confusion matrices, taken out of it, to confusion.json) and let the guard
        look at it and at the run's ``models``."""
        matrices = {k.removesuffix("_confusion"): record.pop(k) for k in list(record) if k.endswith("_confusion")}
        self.run_dir.append_metrics(record)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)
        if matrices:
            self.run_dir.write_confusion(self.classes, matrices)
            if self.tensorboard is not None:
                names = {"ema": self.ema_name, "student": "student"}
                self.tensorboard.confusion(matrices, self.classes, names, record["step"])
        self.guard.check(record["step"], record, models, ema_is_teacher)

    def open_tensorboard(self, step: int) -> None:
        """Write TensorBoard events from ``step`` on (a resumed run drops the events after it)."""
        from .tensorboard import TensorBoardLog

        self.tensorboard = TensorBoardLog(self.run_dir.tensorboard, step or None)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()

    def state_dict(self) -> dict[str, Any]:
        """The logs not yet recorded, for a checkpoint."""
        return {"log_sums": {key: float(value) for key, value in self.sums.items()}, "log_count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = dict(state["log_sums"]), int(state["log_count"])
