"""Where a run's time goes, and what follows from it: the seconds spent training, evaluating and
checkpointing (kept in checkpoints, so that a resumed run reports the whole run's), the evaluation
cadence (spaced out as measured where it is automatic), and, for a run with a deadline (``--time``),
when its steps are fitted again to the speed it measures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from .budget import evaluations_within

REFIT_TOLERANCE = 0.02
"""A run with a deadline changes its steps when the speed measured in it moves its end by more than this share."""


class Pacing:
    """The clock of one run in one process. ``eval_every``: the evaluation cadence; ``bounded``: whether it
    is automatic (and so spaced out as measured, see ``bound_evaluations``); ``deadline``: the
    ``time.perf_counter()`` by which a ``--time`` run should end."""

    def __init__(self, eval_every: int, bounded: bool, distributed: bool = False) -> None:
        self.eval_every, self.bounded, self.distributed = eval_every, bounded, distributed
        self.deadline: float | None = None
        self.elapsed = self.eval_seconds = self.checkpoint_seconds = 0.0
        self.evaluations = 0
        self.refit_at: set[int] = set()

    def start(self, step: int, steps: int) -> None:
        """The run (re)starts at ``step`` of ``steps``: the clock goes on from the time already recorded."""
        now = time.perf_counter()
        self.started, self.since, self.steps_started = now - self.elapsed, now, step
        self.side_seconds = self.eval_seconds + self.checkpoint_seconds
        self.last_checkpoint = now
        self.steps_planned = steps
        self.refit_at = {max(1, steps // 10), steps // 2} if self.deadline is not None else set()

    def tick(self) -> None:
        """After each step: the run's time so far."""
        self.elapsed = time.perf_counter() - self.started

    def trained_seconds(self) -> float:
        """Seconds spent on training steps since ``start`` (evaluations and checkpoints left out)."""
        return time.perf_counter() - self.since - (self.eval_seconds + self.checkpoint_seconds - self.side_seconds)

    @contextmanager
    def evaluating(self, step: int, steps: int) -> Iterator[None]:
        """Time an evaluation at ``step`` of ``steps``, then keep the evaluations within their share."""
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.eval_seconds += seconds
        self.evaluations += 1
        self.bound_evaluations(seconds, self.trained_seconds(), step - self.steps_started, steps)

    @contextmanager
    def checkpointing(self) -> Iterator[None]:
        """Time a checkpoint (``elapsed`` is the run's time when it is written)."""
        start = time.perf_counter()
        self.elapsed = start - self.started
        yield
        self.checkpoint_seconds += time.perf_counter() - start
        self.last_checkpoint = time.perf_counter()

    def since_checkpoint(self) -> float:
        """Seconds since the last checkpoint (or the start)."""
        return time.perf_counter() - self.last_checkpoint

    def bound_evaluations(self, evaluation: float, seconds: float, steps: int, total_steps: int) -> None:
        """Space automatic evaluations out as ``budget.evaluations_within`` says for this run's measured
        step and evaluation: a test set that is large next to the step (10,000 CIFAR-10 images against a
        step of 100 on a CPU) would otherwise take most of the run. ``seconds`` and ``steps``: this
        process's training so far, of ``total_steps``. One process only: the ranks of a distributed run
        must agree on the cadence without talking."""
        if not self.bounded or steps <= 0 or self.distributed:
            return
        run_seconds = max(seconds, 1e-9) / steps * total_steps
        self.eval_every = max(self.eval_every, total_steps // evaluations_within(run_seconds, evaluation))

    def refit_due(self, step: int, steps: int) -> bool:
        """Whether a run with a deadline measures its speed at ``step`` (10 % and 50 % of its steps)."""
        return step in self.refit_at and step < steps

    def steps_to_deadline(
        self, step: int, steps: int, eval_every: int, step_seconds: float, evaluation_seconds: float
    ) -> int:
        """The steps that end the run on time at ``step_seconds`` a step and ``evaluation_seconds`` an
        evaluation every ``eval_every`` steps; ``steps`` when that is within ``REFIT_TOLERANCE`` of them."""
        left = self.deadline - time.perf_counter() - evaluation_seconds  # the final evaluation
        fitted = step + max(1, int(left / (step_seconds + evaluation_seconds / eval_every)))
        return steps if abs(fitted - steps) <= REFIT_TOLERANCE * steps else fitted

    def after_refit(self, step: int, steps: int) -> None:
        """The run measured its speed at ``step`` and now takes ``steps``: it measures once more half-way
        through them, after the first refit only."""
        half_way = steps // 2
        self.refit_at = {half_way} if step < half_way and step == max(1, self.steps_planned // 10) else set()
