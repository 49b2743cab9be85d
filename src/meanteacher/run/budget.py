"""A run that fits a time (``--time 10m``): its step, an evaluation and a checkpoint timed on the run's
own data and network, and the number of steps that fits the time left."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config, apply_settings
from ..config.auto import (
    EVALUATION_SHARE,
    EVALUATIONS_PER_RUN,
    MAX_EVALUATION_SHARE,
    MIN_EVALUATIONS,
    ScheduleWarning,
)
from ..data.sources import DataSource
from ..errors import MeanTeacherError
from .graphs import GraphedStep
from .plan import read_data, replan
from .progress import duration

PROBE_STEPS = 4
"""Steps timed after the untimed ones (``untimed_steps``) and the timed evaluation."""


@dataclass
class Timing:
    """What the probe measured, in seconds."""

    build: float
    step: float
    evaluation: float
    checkpoint: float

    def steps_within(self, seconds: float, config: Config) -> int:
        """Steps whose training, evaluations (every ``eval_every`` steps and at the end) and checkpoints
        (``checkpoint_seconds`` apart and at the end) fit ``seconds``, the trainer's set-up included."""
        checkpoints = self.checkpoint * (seconds / max(config.checkpoint_seconds, 1.0) + 1)
        fixed = self.build + self.evaluation + checkpoints
        if config.eval_every is None:
            fixed += self.evaluation * self.evaluations(seconds)
            per_step = self.step
        else:
            per_step = self.step + self.evaluation / config.eval_every
        return max(1, int((seconds - fixed) / per_step))

    def warn_if_too_short(self, seconds: float) -> None:
        """A one-line ``ScheduleWarning`` when ``seconds`` do not cover the set-up, one step and an evaluation:
        the run then trains its one step and ends after the time asked."""
        least = self.build + self.step + self.evaluation
        if seconds < least:
            warnings.warn(
                f"--time leaves {max(seconds, 0.0):.0f} s to train, less than the set-up, one step and an evaluation take "
                f"here ({least:.0f} s): the run trains 1 step and ends late",
                ScheduleWarning,
                stacklevel=2,
            )

    def evaluations(self, seconds: float) -> int:
        """Evaluations of a run of ``seconds`` with an automatic cadence (see ``evaluations_within``)."""
        return evaluations_within(seconds, self.evaluation)


def evaluations_within(seconds: float, evaluation: float) -> int:
    """How many evaluations of ``evaluation`` seconds a run of ``seconds`` gets with an automatic cadence:
    ``EVALUATIONS_PER_RUN``; fewer where they would take more than ``EVALUATION_SHARE`` of the time, but
    ``MIN_EVALUATIONS`` for the learning curve unless those would take more than ``MAX_EVALUATION_SHARE``;
    at least one."""
    affordable = lambda share: int(share * seconds / max(evaluation, 1e-9))  # noqa: E731
    return max(
        1,
        min(
            EVALUATIONS_PER_RUN,
            max(affordable(EVALUATION_SHARE), min(MIN_EVALUATIONS, affordable(MAX_EVALUATION_SHARE))),
        ),
    )


def finish(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CPU runs it as it is queued)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


TrainerFactory = Callable[..., Any]
"""What builds a run's trainer: ``run.train.Trainer``, passed in by the caller (which imports this module)."""


def untimed_steps(optimize: Callable[..., Any]) -> int:
    """Steps a probe runs before it times any: one to build kernels and caches, and for a step captured in a
    CUDA graph (``GraphedStep``) its eager warm-ups, its capture and its first replay, so that only
    replays, what the run mostly does, are timed."""
    return optimize.warmup + 2 if isinstance(optimize, GraphedStep) else 1


def time_run(config: Config, dataset: DataSource, make_trainer: TrainerFactory) -> Timing:
    """Build the run as configured (``make_trainer``, on ``dataset``, in a scratch directory) and time its parts."""
    probe_config = apply_settings(config, {"steps": 10**9, "time_budget": None}, "time budget")
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        probe = make_trainer(probe_config, scratch, progress=False, dataset=dataset)
        build = time.perf_counter() - started
        probe.training_step.method.model.train()
        for _ in range(
            untimed_steps(probe.training_step.optimize)
        ):  # kernels and caches; a captured step's warm-ups and capture
            probe.step()
        finish(probe.device)
        started = time.perf_counter()
        probe.evaluate()  # the first evaluation, a little slower than the next ones: a margin, not a second probe
        evaluation = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(PROBE_STEPS):
            probe.step()
        finish(probe.device)
        step = (time.perf_counter() - started) / PROBE_STEPS
        started = time.perf_counter()
        probe.save_checkpoint()
        checkpoint = time.perf_counter() - started
    return Timing(build, step, evaluation, checkpoint)


def fit_to_time(
    config: Config, dataset: DataSource, deadline: float, make_trainer: TrainerFactory
) -> tuple[Config, Timing]:
    """``config`` with the steps that end the run by ``deadline`` (a ``time.perf_counter()`` value) and,
    where automatic, the evaluation cadence; and the timing they were chosen from."""
    timing = time_run(config, dataset, make_trainer)
    seconds = deadline - time.perf_counter()
    timing.warn_if_too_short(seconds)
    steps = timing.steps_within(seconds, config)
    settings = {"steps": steps}
    if config.eval_every is None:
        settings["eval_every"] = max(1, steps // timing.evaluations(seconds))
    return apply_settings(config, settings, "time budget"), timing


@dataclass
class TimedRun:
    """A run fitted to its time before it starts: its config with the steps that fit, the config before
    automatic settings were resolved (``requested``), the data the probe loaded, and the deadline."""

    config: Config
    requested: Config
    dataset: DataSource
    deadline: float


def fit_run_to_time(config: Config, make_trainer: TrainerFactory, progress: bool) -> TimedRun:
    """Time ``config``'s step on its own data and network and fit its steps to ``config.time_budget``,
    counted from now; with ``progress``, say what was measured and the steps chosen."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise MeanTeacherError("--time works in one process (not torchrun): set --steps for a distributed run")
    deadline = time.perf_counter() + config.time_budget
    requested, dataset = config, read_data(config)
    config, timing = fit_to_time(requested, dataset, deadline, make_trainer)
    if progress:
        print(
            f"time budget {duration(config.time_budget)}: a step takes {timing.step:.3f} s, an evaluation "
            f"{timing.evaluation:.1f} s and a checkpoint {timing.checkpoint:.1f} s here, so the run takes "
            f"{config.steps:,} steps"
            + (f", evaluating every {config.eval_every:,}" if config.eval_every is not None else ""),
            file=sys.stderr,
            flush=True,
        )
    return TimedRun(config, requested, dataset, deadline)


def refit(trainer: Any, step: int, step_seconds: float, evaluation_seconds: float) -> Config:
    """A run with a deadline (``--time``), at 10 % and 50 % of its steps: ``trainer``'s config with the steps
    that end it on time at the speed measured so far (a probe's few steps can run faster than a long run,
    e.g. on a CPU whose clock drops under sustained load), set on the trainer and written to the run
    directory. The automatic settings that follow the steps are derived again (``plan.replan``), so
    the ramps keep their shares of the run; the ramp-down stays anchored at the end."""
    config = trainer.config
    steps = trainer.pacing.steps_to_deadline(step, config.steps, config.eval_every, step_seconds, evaluation_seconds)
    if steps == config.steps:
        return config
    if trainer.show_progress:
        print(
            f"at step {step:,}: a step takes {step_seconds:.3f} s in this run, so it now takes {steps:,} steps "
            f"(not {config.steps:,}) to end on time",
            file=sys.stderr,
            flush=True,
        )
    evaluations = None if config.time_budget is None else evaluations_within(config.time_budget, evaluation_seconds)
    trainer.plan = replan(trainer.plan, steps, evaluations)
    config = trainer.config
    trainer.training_step.hyperparameters.config = config
    trainer.pacing.eval_every = config.eval_every
    trainer.guard.follow(config)
    if trainer.world.is_main:
        trainer.run_dir.write_config(config)  # a resumed run goes on to the new end
    return config
