"""A run directory and its files: ``config.toml``, ``labels.txt``, ``checkpoint.pt``, ``metrics.jsonl``,
``summary.json`` and ``curves.png``. Every write is atomic (a temporary file, then a rename)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from ..config.toml import load_config_file, to_toml
from ..errors import MeanTeacherError
from ..files import atomic_torch_save, atomic_write_text

CHECKPOINT_FORMAT = 2
"""2: every method keeps an EMA of the student (``method.ema``); 1 had a teacher for Mean Teacher only."""


def read_tensors(path: Path, problem: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file that does not load ends in one line,
    ``problem`` followed by the reason."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle means a bad file
        raise MeanTeacherError(f"{problem} ({str(error).splitlines()[0][:120]})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise MeanTeacherError(f"{path}: no checkpoint found")
    state = read_tensors(path, f"{path}: not a readable meanteacher checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("format"), int):
        raise MeanTeacherError(f"{path}: not a meanteacher checkpoint (format {CHECKPOINT_FORMAT})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise MeanTeacherError(
            f"{path}: checkpoint format {state['format']} was written by another meanteacher version; "
            f"this one reads format {CHECKPOINT_FORMAT}"
        )
    return state


def check_architecture(state: dict[str, Any], arch: str, path: Path) -> None:
    """A clear error when a checkpoint was written for another architecture."""
    if state.get("arch") != arch:
        raise MeanTeacherError(f"{path}: checkpoint is for architecture {state.get('arch')!r}, not {arch!r}")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, without a last line cut short by a killed run."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's ``summary.json``; a clear error if it has none."""
    path = Path(run_dir) / "summary.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MeanTeacherError(f"{run_dir}: no summary.json (the run has not finished)") from None
    except json.JSONDecodeError as error:
        raise MeanTeacherError(f"{path}: not valid JSON ({error})") from None


def default_run_name(config: Config) -> str:
    """``<dataset>-<method>-<labels>-s<seed>`` style name for a run directory."""
    dataset = Path(config.dataset).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        dataset = dataset.removesuffix(suffix)
    labels = config.labels or "all"
    return f"{dataset}-{config.method}-{labels}-s{config.seed}"


class RunDirectory:
    """The files of one run, by name."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.toml"
        self.labels_file = self.path / "labels.txt"
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"
        self.curves = self.path / "curves.png"
        self.confusion = self.path / "confusion.json"
        self.confusion_plot = self.path / "confusion.png"
        self.tensorboard = self.path / "tensorboard"

    def prepare(self, resume: bool) -> None:
        """Refuse to overwrite a finished or started run unless resuming, and to resume nothing."""
        if resume:
            if not self.checkpoint.is_file():
                raise MeanTeacherError(f"{self.path}: no checkpoint to resume from")
        elif self.checkpoint.is_file() or self.metrics.is_file():
            raise MeanTeacherError(
                f"{self.path}: a run already exists there; use --resume {self.path} or another --out"
            )

    def read_config(self) -> Config:
        """The resolved configuration the run was started with."""
        if not self.config_file.is_file():
            raise MeanTeacherError(f"{self.path}: not a run directory (no config.toml)")
        return load_config_file(self.config_file, run_record=True)

    def write_config(self, config: Config) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_toml(config))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_torch_save({"format": CHECKPOINT_FORMAT, **state}, self.checkpoint)

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.checkpoint)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Keep the records up to ``step`` (those a resumed run will not write again)."""
        if self.metrics.is_file():
            kept = [record for record in read_metrics(self.metrics) if record["step"] <= step]
            atomic_write_text(self.metrics, "".join(json.dumps(record) + "\n" for record in kept))

    def last_metrics(self) -> dict[str, Any]:
        records = read_metrics(self.metrics)
        return records[-1] if records else {}

    def write_confusion(self, classes: list[str], matrices: dict[str, list[list[int]]]) -> None:
        """The confusion matrices of the final evaluation (``{"classes": [...], "ema": rows, "student": rows}``)."""
        atomic_write_text(self.confusion, json.dumps({"classes": classes, **matrices}) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary, json.dumps(summary, indent=2) + "\n")


def read_confusion(run_dir: str | Path) -> dict[str, Any] | None:
    """A finished run's ``confusion.json`` (see ``RunDirectory.write_confusion``), or None if it has none."""
    path = Path(run_dir) / "confusion.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise MeanTeacherError(f"{path}: not valid JSON ({error})") from None
