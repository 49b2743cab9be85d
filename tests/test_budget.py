"""Training for a time (``--time``): durations, the arithmetic of the steps that fit, and the plumbing."""

import re
import warnings

import pytest

from meanteacher.config import load_config_file
from meanteacher.errors import MeanTeacherError
from meanteacher.run.budget import Timing, parse_duration
from meanteacher.run.train import train
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
    from meanteacher.auto import ScheduleWarning

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
    trainer.deadline = time.perf_counter() + 6.0
    config = trainer._refit(step=10, step_seconds=0.1, evaluation_seconds=0.5)  # ~5.5 s left at 0.1 + 0.5 / 10 s a step
    assert 40 <= config.steps <= 46 and trainer.config is config
    assert trainer.parts.hyperparameters.config.steps == config.steps and config.rampup_steps == rampup
    assert load_config_file(tmp_path / "config.toml").steps == config.steps  # a resumed run ends there too
    trainer.deadline = time.perf_counter() + (config.steps - 10 + 0.5) * 0.15 + 0.5
    assert trainer._refit(step=10, step_seconds=0.1, evaluation_seconds=0.5).steps == config.steps  # within 2 %: kept
