"""Evaluation cadence that follows the run: about 25 evaluations without a preset, spaced out when an
evaluation is expensive next to a step; presets keep the paper's 500."""

from meanteacher.config.auto import EVALUATIONS_PER_RUN
from meanteacher.config.toml import load_preset
from meanteacher.run.budget import evaluations_within
from meanteacher.run.rundir import read_metrics
from meanteacher.run.train import Trainer
from tests.helpers import tiny_config


def test_an_automatic_cadence_gives_about_25_evaluations(tmp_path):
    trainer = Trainer(tiny_config(steps=50, eval_every=None), tmp_path, progress=False)
    assert trainer.config.eval_every == 50 // EVALUATIONS_PER_RUN
    trainer.pacing.bounded = False  # the count, whatever this machine's speed
    trainer.run()
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == EVALUATIONS_PER_RUN
    assert load_preset("cifar10-4000").eval_every == 500 and load_preset("cifar10-cpu-1000").eval_every == 500


def test_expensive_evaluations_are_spaced_out(tmp_path):
    trainer = Trainer(tiny_config(steps=1000, eval_every=None), tmp_path, progress=False)
    assert trainer.pacing.eval_every == 40
    trainer.pacing.bound_evaluations(
        evaluation=1.0, seconds=10.0, steps=100, total_steps=1000
    )  # a step of 0.1 s, an evaluation of 1 s
    assert trainer.pacing.eval_every == 1000 // 15  # 10 evaluations would be a tenth of the run; the curve keeps 15
    trainer.pacing.bound_evaluations(evaluation=0.1, seconds=10.0, steps=100, total_steps=1000)
    assert trainer.pacing.eval_every == 1000 // 15  # never closer again
    trainer.pacing.bound_evaluations(evaluation=10.0, seconds=10.0, steps=100, total_steps=1000)
    assert trainer.pacing.eval_every == 1000  # the run (100 s) affords one evaluation of 10 s: the last
    fixed = Trainer(tiny_config(steps=1000, eval_every=40), tmp_path / "fixed", progress=False)
    fixed.pacing.bound_evaluations(evaluation=1.0, seconds=10.0, steps=100, total_steps=1000)
    assert fixed.pacing.eval_every == 40  # a cadence that was set is kept


def test_the_number_of_evaluations_a_run_can_afford():
    assert evaluations_within(600, 1.8) == EVALUATIONS_PER_RUN  # 25 of them take 7.5 % of the time
    assert evaluations_within(825, 7.2) == 15  # 11 would be a tenth; the curve keeps 15 (13 %)
    assert evaluations_within(120, 1.8) == 10  # 15 would take 23 % of a 2-minute run: 15 % at most
    assert evaluations_within(100, 30.0) == 1 and evaluations_within(1.0, 100.0) == 1
