"""What a run says while it trains: the plan line, a progress bar (or plain lines when not a terminal)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..config.auto import CONSISTENCY_PAYS_FROM_PASSES, STRONG_VIEW_EVIDENCE
from ..methods import method_class


def per_class_text(counts: list[int]) -> str:
    """Labeled images per class, briefly: ``100 per class`` when even, else their range."""
    return f"{counts[0]:,} per class" if min(counts) == max(counts) else f"{min(counts):,} to {max(counts):,} per class"


def plan_line(
    config: Config,
    dataset_name: str,
    labeled_per_class: list[int],
    hidden: int,
    pile: int,
    labeled_per_batch: int | None,
    steps_left: int,
    run_dir: Path,
) -> str:
    """One line on what the run will do: its labeled images per class, its unlabeled ones (the pile and
    the images whose labels are hidden), steps, the batch's labeled share, network and run directory."""
    labeled = sum(labeled_per_class)
    unlabeled = f"{hidden + pile:,} unlabeled"
    if pile:
        unlabeled += f" ({pile:,} from the pile, {hidden:,} with labels hidden)"
    if not method_class(config.method).uses_unlabeled and hidden + pile:
        unlabeled += f", which {method_class(config.method).display_name} does not use"
    if labeled_per_batch is None:
        batch = f"{config.batch_size} images (labeled and unlabeled alike)"
    else:
        passes = steps_left * labeled_per_batch / max(labeled, 1)
        share = f"{labeled_per_batch / config.batch_size:.0%}"
        batch = f"{config.batch_size} images ({labeled_per_batch} labeled, {share}: {passes:,.0f} passes over the labeled images)"
        if config.method != "supervised" and passes < CONSISTENCY_PAYS_FROM_PASSES:
            batch += (
                f" - few for {config.method}: on CIFAR-10 Mean Teacher beat supervised-only from about "
                f"{CONSISTENCY_PAYS_FROM_PASSES} passes (more --steps, or fewer labels per batch)"
            )
        elif config.method != "supervised" and config.student_view != "weak":
            batch += f" - {STRONG_VIEW_EVIDENCE}"
    width = (
        f" at width {config.arch_options['width']:g}"
        if isinstance(config.arch_options.get("width"), (int, float))
        else ""
    )
    return (
        f"{config.method} on {dataset_name}: {labeled:,} labeled ({per_class_text(labeled_per_class)}, {len(labeled_per_class)} classes), "
        f"{unlabeled}; {steps_left:,} steps of {batch}; {config.arch}{width} in {config.precision}; run directory {run_dir}"
    )


LONG_RUN_SECONDS = 4 * 3600
"""A run estimated longer than this is told how to make it shorter (a run without --steps or a preset is 150,000 steps)."""


def duration(seconds: float) -> str:
    """``seconds`` as a person reads a duration: 42 s, 7.5 min, 2.1 h."""
    return (
        f"{seconds:.0f} s"
        if seconds < 90
        else f"{seconds / 60:.1f} min"
        if seconds < 5400
        else f"{seconds / 3600:.1f} h"
    )


@dataclass
class Progress:
    """What the main process says while a run trains: a progress bar on a terminal, plain lines otherwise.

    ``plan`` (what the run will do) is printed at once; after the first step, the time the run will
    take at that step's speed; after ``CORRECTED_AFTER`` more steps, the estimate again from those.
    Without a terminal, a line with the step, images per second and the time left follows every
    ``LINE_SECONDS`` (and the evaluations' lines, see ``report``).
    """

    total: int
    start: int
    enabled: bool
    plan: str = ""
    images_per_step: int = 0

    CORRECTED_AFTER = 5
    LINE_SECONDS = 60.0

    def __post_init__(self) -> None:
        self.bar = None
        self.started = time.perf_counter()
        self.first_step_done: float | None = None
        self.last_line = self.started
        self.steps_done = 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.start, unit="step", dynamic_ncols=True)
        if self.plan:
            self._say(self.plan)

    def _say(self, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self) -> None:
        self.steps_done += 1
        now = time.perf_counter()
        left = self.total - self.start - self.steps_done
        if self.steps_done == 1:
            self.first_step_done = now
            first = now - self.started
            hint = "; --time 30m (or --steps N) makes it shorter" if left * first > LONG_RUN_SECONDS else ""
            self._say(f"first step {first:.2f} s: about {duration(left * first)} to go at that speed{hint}")
        elif self.steps_done == self.CORRECTED_AFTER + 1 and left > 0:
            per_step = (now - self.first_step_done) / self.CORRECTED_AFTER
            self._say(f"steps 2-{self.steps_done}: {per_step:.3f} s/step, about {duration(left * per_step)} to go")
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and (self.steps_done == 1 or now - self.last_line >= self.LINE_SECONDS):
            self.last_line = now
            rate = self.steps_done / (now - self.started)
            print(
                f"step {self.start + self.steps_done}/{self.total}  {rate * self.images_per_step:.0f} images/s  "
                f"ETA {duration(left / rate)}",
                file=sys.stderr,
                flush=True,
            )

    def set_total(self, total: int) -> None:
        """The run's last step changed (a run with a deadline refitted its steps)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

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
        print(
            f"step {step}/{self.total}  {text}  {rate:.2f} steps/s  ETA {eta / 60:.1f} min", file=sys.stderr, flush=True
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
