"""The guard against a dead Mean Teacher: each way of killing it warns once, naming its cause; a
healthy run says nothing."""

import warnings

import pytest
import torch

from meanteacher.run.guard import DeadTeacherGuard, DeadTeacherWarning
from meanteacher.run.train import Trainer
from tests.helpers import tiny_config

HEALTHY = {"steps": 40, "eval_every": 5, "checkpoint_every": 40, "rampup_steps": 10, "consistency": 10.0}


def guard_warnings(tmp_path, **settings) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(tiny_config(**{**HEALTHY, **settings}), tmp_path, progress=False).run()
    return [str(w.message) for w in caught if issubclass(w.category, DeadTeacherWarning)]


def test_a_healthy_run_says_nothing(tmp_path):
    assert guard_warnings(tmp_path) == []


@pytest.mark.parametrize(
    "settings, cause",
    [
        ({"consistency": 0.0}, "the consistency weight is 0"),
        ({"consistency": 1.0, "rampup_steps": 100_000}, "the ramp-up is longer than the run"),
        ({"ema_decay": 0.0, "ema_decay_rampup": 0.0}, "an EMA decay of 0 copies the student"),
        ({"lr": 0.0}, "is the learning rate 0"),  # the teacher equals the student here too, but not for the decay
    ],
)
def test_each_dead_teacher_warns_once_with_its_cause(tmp_path, settings, cause):
    messages = guard_warnings(tmp_path, **settings)
    assert any(cause in message for message in messages), messages
    assert len(messages) == len(set(messages)) and all("\n" not in message for message in messages)


def test_a_teacher_that_is_never_updated_is_caught(tmp_path, monkeypatch):
    """The bug of a library whose teacher kept its first weights: the update does nothing."""
    from meanteacher.teacher import EMATeacher

    monkeypatch.setattr(EMATeacher, "update", lambda self, student, step, decay=None: None)
    messages = guard_warnings(tmp_path)
    assert any("the teacher has not changed since the last evaluation" in m and "decay" in m for m in messages), (
        messages
    )


def test_supervised_only_is_not_watched_for_a_teacher(tmp_path):
    assert guard_warnings(tmp_path, method="supervised") == []


def test_checks_begin_after_the_ramp_up():
    guard = DeadTeacherGuard(tiny_config(steps=100, rampup_steps=40))
    dead = {"class_cost": 1.0, "consistency_cost": 0.0, "consistency_weight": 0.0}
    network = torch.nn.Linear(2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert guard.check(20, dead, {"ema": network, "student": network}, True) == []
        assert guard.check(30, dead, {"ema": network, "student": network}, True) == []
        assert guard.check(40, dead, {"ema": network, "student": network}, True) == []  # first look: fingerprints only
        with torch.no_grad():
            network.weight.add_(1.0)
        late = guard.check(50, dead, {"ema": network, "student": network}, True)
    assert any("consistency cost is about zero" in message for message in late)
    assert any("equal the student's" in message for message in late)
    assert DeadTeacherGuard(tiny_config(steps=100, rampup_steps=10**6)).start == 50  # half-way when the ramp is longer
