"""A run's summary (``summary.json``): what ran, its last errors, and where its time went."""

from __future__ import annotations

from typing import Any

from ..config import Config
from .pacing import Pacing


def run_summary(
    config: Config, dataset: str, labels: int, steps: int, last: dict[str, Any], pacing: Pacing, steps_timed: int
) -> dict[str, Any]:
    """The summary of a run of ``config`` on ``dataset`` with ``labels`` labeled images, at ``steps`` steps,
    from its ``last`` metrics record; its speed is that of the ``steps_timed`` trained since this process
    started (``pacing.trained_seconds()``)."""
    train_seconds = pacing.trained_seconds()
    return {
        "method": config.method,
        "dataset": dataset,
        "labels": labels,
        "seed": config.seed,
        "steps": steps,
        "arch": config.arch,
        "student_error": last.get("student_error"),
        "ema_error": last.get("ema_error"),
        **{key: last[key] for key in ("validation_ema_error", "validation_student_error") if key in last},
        "precision": config.precision,
        "seconds": round(pacing.elapsed, 2),
        "train_seconds": round(pacing.elapsed - pacing.eval_seconds - pacing.checkpoint_seconds, 2),
        "eval_seconds": round(pacing.eval_seconds, 2),
        "checkpoint_seconds": round(pacing.checkpoint_seconds, 2),
        "images_per_second": round(steps_timed * config.batch_size / train_seconds, 1) if train_seconds > 0 else None,
    }
