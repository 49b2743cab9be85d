"""What a run says while it trains: the plan line, a progress bar (or plain lines when not a terminal)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONSISTENCY_PAYS_FROM_PASSES, Config


def plan_line(config: Config, dataset_name: str, train_images: int, labeled: int, labeled_per_batch: int | None, num_classes: int,
              steps_left: int, run_dir: Path) -> str:
    """One line on what the run will do: data, labels, steps, batch composition, run directory."""
    if labeled_per_batch is None:
        batch = f"{config.batch_size} images (labeled and unlabeled alike)"
    else:
        passes = steps_left * labeled_per_batch / max(labeled, 1)
        batch = f"{config.batch_size} images ({labeled_per_batch} labeled: {passes:,.0f} passes over the labeled images)"
        if config.method != "supervised" and passes < CONSISTENCY_PAYS_FROM_PASSES:
            batch += (f" - few for {config.method}: on CIFAR-10 Mean Teacher beat supervised-only from about "
                      f"{CONSISTENCY_PAYS_FROM_PASSES} passes (more --steps, or fewer labels per batch)")
    return (f"{config.method} on {dataset_name}: {train_images:,} training images, {labeled:,} labeled, {num_classes} classes; "
            f"{steps_left:,} steps of {batch}; run directory {run_dir}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass
class Progress:
    """Progress bar on a terminal, plain log lines otherwise (only on the main process).

    After the first ``TIMED_STEPS`` steps it prints ``plan`` (what the run will do) with the time the
    whole run will take at the speed of those steps.
    """

    total: int
    start: int
    enabled: bool
    plan: str = ""

    TIMED_STEPS = 5

    def __post_init__(self) -> None:
        self.bar = None
        self.started = time.perf_counter()
        self.first_step_done: float | None = None
        self.steps_done = 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.start, unit="step", dynamic_ncols=True)

    def step(self) -> None:
        self.steps_done += 1
        if self.steps_done == 1:
            self.first_step_done = time.perf_counter()  # the first step warms up: time from its end
        elif self.enabled and self.plan and (self.steps_done == self.TIMED_STEPS + 1 or self.start + self.steps_done == self.total):
            self.plan, plan = "", self.plan  # printed once
            per_step = (time.perf_counter() - self.first_step_done) / (self.steps_done - 1)
            left = self.total - self.start - self.steps_done
            text = f"{plan}; about {_duration(left * per_step)} to go ({per_step:.3f} s/step over the first steps)"
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        shown = {k: record[k] for k in ("class_cost", "consistency_cost", "student_error", "ema_error") if k in record}
        text = "  ".join(f"{k} {v:.2%}" if k.endswith("error") else f"{k} {v:.4f}" for k, v in shown.items())
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            return
        elapsed = time.perf_counter() - self.started
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else 0.0
        print(f"step {step}/{self.total}  {text}  {rate:.2f} steps/s  ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
