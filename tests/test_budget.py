"""Training for a time (``--time``): durations, the arithmetic of the steps that fit, and the plumbing."""

import re
import time
import warnings

import pytest
import torch

from meanteacher.config.toml import load_config_file, parse_duration
from meanteacher.errors import MeanTeacherError
from meanteacher.run.budget import Timing, evaluations_within, refit, time_run
from meanteacher.run.train import Trainer, train
from tests.helpers import tiny_config


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("10min", 600), ("1.5h", 5400), ("600", 600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "-5m", "0", "5d"])
def test_bad_durations_are_one_line(text):
    with pytest.raises(MeanTeacherError, match="expected a positive duration"):
        parse_duration(text)


def test_the_steps_that_fit_count_evaluations_checkpoints_and_the_set_up():
    config = tiny_config(eval_every=100, checkpoint_seconds=60.0)
    timing = Timing(build=10.0, step=0.5, evaluation=5.0, checkpoint=1.0)
    steps = timing.steps_within(600.0, config)
    # 600 s = 10 (set-up) + 5 (last evaluation) + 11 checkpoints (every 60 s and the last) + steps * (0.5 + 5 / 100)
    assert steps == int((600 - 10 - 5 - 11) / 0.55)
    spent = 10 + steps * 0.5 + (steps // 100 + 1) * 5 + 11
    assert 580 <= spent <= 600
    assert (
        Timing(build=1000.0, step=1.0, evaluation=1.0, checkpoint=1.0).steps_within(60.0, config) == 1
    )  # always one step


def test_a_budget_shorter_than_the_set_up_is_told_in_one_line():
    from meanteacher.config.auto import ScheduleWarning

    timing = Timing(build=50.0, step=1.0, evaluation=5.0, checkpoint=1.0)
    with pytest.warns(
        ScheduleWarning,
        match="--time leaves 30 s to train, less than the set-up, one step and an evaluation take here .56 s.",
    ):
        timing.warn_if_too_short(30.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        timing.warn_if_too_short(60.0)  # enough: silent


def test_a_timed_run_records_its_budget_and_the_steps_it_chose(tmp_path, capsys):
    summary = train(tiny_config(steps=10**6, time_budget=15.0, eval_every=1000), tmp_path / "run", progress=True)
    config = load_config_file(tmp_path / "run" / "config.toml")
    assert config.time_budget == 15.0 and 1 <= config.steps < 10**6 and summary["steps"] == config.steps
    err = capsys.readouterr().err
    planned = int(re.search(r"so the run takes ([\d,]+) steps", err).group(1).replace(",", ""))
    assert planned == config.steps or f"it now takes {config.steps:,} steps" in err  # refitted to the speed in the run


def test_a_run_with_a_deadline_refits_its_steps_to_the_speed_it_measures(tmp_path):
    import time

    from meanteacher.run.train import Trainer

    trainer = Trainer(tiny_config(steps=100, eval_every=10), tmp_path, progress=False)
    trainer.run_dir.write_config(trainer.config)
    rampup = trainer.config.rampup_steps
    trainer.pacing.deadline = time.perf_counter() + 6.0
    config = refit(trainer, step=10, step_seconds=0.1, evaluation_seconds=0.5)  # ~5.5 s left at 0.1 + 0.5 / 10 s a step
    assert 40 <= config.steps <= 46 and trainer.config is config
    assert trainer.training_step.hyperparameters.config.steps == config.steps and config.rampup_steps == rampup
    assert load_config_file(tmp_path / "config.toml").steps == config.steps  # a resumed run ends there too
    trainer.pacing.deadline = time.perf_counter() + (config.steps - 10 + 0.5) * 0.15 + 0.5
    assert refit(trainer, step=10, step_seconds=0.1, evaluation_seconds=0.5).steps == config.steps  # within 2 %: kept


class SlowUntilReplayed:
    """A probe's trainer whose step is captured in a CUDA graph: its first calls (eager warm-ups, the
    capture, the first replay) take 50 times as long as the replays that follow."""

    def __init__(self, config, run_dir, progress=False, dataset=None):
        from types import SimpleNamespace

        from torch import nn

        from meanteacher.run.graphs import GraphedStep

        self.optimize = GraphedStep(lambda batch: {}, warmup=3)
        self.training_step = SimpleNamespace(method=SimpleNamespace(model=nn.Linear(1, 1)), optimize=self.optimize)
        self.device = torch.device("cpu")
        self.calls = 0

    def step(self):
        self.calls += 1
        time.sleep(0.1 if self.calls <= self.optimize.warmup + 2 else 0.002)

    def evaluate(self):
        pass

    def save_checkpoint(self):
        pass


def test_the_probe_times_only_the_replays_of_a_captured_step():
    timing = time_run(tiny_config(), None, SlowUntilReplayed)
    assert timing.step < 0.05  # the replays' 2 ms, not the warm-ups' and capture's 100 ms


def test_a_refit_derives_the_ramps_the_ema_and_the_evaluations_again_for_its_steps(tmp_path):
    from meanteacher.config.auto import EMA_WINDOW_SHARE, RAMPDOWN_SHARE, RAMPUP_SHARE

    automatic = {
        name: None for name in ("rampup_steps", "rampdown_steps", "ema_decay", "ema_decay_rampup", "eval_every")
    }
    trainer = Trainer(tiny_config(steps=100, time_budget=6.0, **automatic), tmp_path, progress=False)
    trainer.run_dir.write_config(trainer.config)
    before = trainer.config
    assert before.rampup_steps == round(100 * RAMPUP_SHARE)
    trainer.pacing.deadline = time.perf_counter() + 6.0
    config = refit(trainer, step=10, step_seconds=0.001, evaluation_seconds=0.01)
    assert config.steps > 1000
    assert (config.rampup_steps, config.rampdown_steps) == (
        round(config.steps * RAMPUP_SHARE),
        round(config.steps * RAMPDOWN_SHARE),
    )
    assert (
        config.ema_decay == round(1 - 1 / (config.steps * EMA_WINDOW_SHARE), 6) > before.ema_decay
    )  # a 50th of the run
    assert config.eval_every == max(1, config.steps // evaluations_within(6.0, 0.01)) == trainer.pacing.eval_every
    assert trainer.guard.config is config and trainer.guard.start == config.rampup_steps
    kept = Trainer(tiny_config(steps=100, time_budget=6.0), tmp_path / "set", progress=False)  # ramps set: kept
    kept.pacing.deadline = time.perf_counter() + 6.0
    assert refit(kept, step=10, step_seconds=0.001, evaluation_seconds=0.01).rampup_steps == 10


def test_after_a_refit_the_run_measures_again_half_way_through_its_new_steps(tmp_path, monkeypatch):
    """On a clock that moves 50 ms a step and stands still otherwise: the machine's speed and load play no part."""
    trainer = Trainer(
        tiny_config(steps=10, eval_every=20, rampup_steps=None, time_budget=5.0), tmp_path, progress=False
    )
    optimize, clock = trainer.training_step.optimize, [1000.0]

    def slow(batch):
        clock[0] += 0.05
        return optimize(batch)

    trainer.training_step.optimize = slow
    refits, steps_after = [], []

    def recorded(trainer, step, step_seconds, evaluation_seconds):
        refits.append(step)
        steps_after.append(refit(trainer, step, step_seconds, evaluation_seconds).steps)
        return trainer.config

    monkeypatch.setattr("meanteacher.run.train.refit", recorded)
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    trainer.pacing.deadline = clock[0] + 5.0  # time for about 100 steps of 50 ms, 10 planned
    trainer.run()
    assert refits[0] == 1 and steps_after[0] > 20  # the probe's 10 steps were far too few
    assert refits == [1, steps_after[0] // 2]  # half-way through the refitted run, not the planned one; then no more
