"""Warm start (``--init``): student and teacher begin from a finished run's EMA network or from an
exported ``state_dict``; weights of another shape end in one line naming the first that does not fit."""

import shutil

import pytest
import torch

from meanteacher.cli import main
from meanteacher.errors import MeanTeacherError
from meanteacher.inference import export_model, load_run
from meanteacher.run.train import Trainer, train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def supervised_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("warm") / "supervised"
    train(tiny_config(method="supervised", steps=10), run, progress=False)
    return run


def assert_same_weights(model, expected):
    state = model.state_dict()
    assert state.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(state[name], tensor), name


def test_student_and_teacher_start_from_the_runs_ema_network(supervised_run, tmp_path):
    ema = load_run(supervised_run).models["ema"].state_dict()
    trainer = Trainer(tiny_config(init=str(supervised_run)), tmp_path / "mt", progress=False)
    assert_same_weights(trainer.training_step.model, ema)
    assert_same_weights(trainer.training_step.method.teacher.module, ema)
    cold = Trainer(tiny_config(), tmp_path / "cold", progress=False)
    assert not torch.equal(next(iter(cold.training_step.model.state_dict().values())), next(iter(ema.values())))


def test_an_exported_state_dict_starts_a_run(supervised_run, tmp_path):
    weights, _ = export_model(supervised_run, tmp_path / "model.pt")
    trainer = Trainer(tiny_config(init=str(weights)), tmp_path / "mt", progress=False)
    assert_same_weights(trainer.training_step.model, torch.load(weights, weights_only=True))


def test_another_shape_names_the_first_parameter_that_does_not_fit(supervised_run, tmp_path):
    with pytest.raises(
        MeanTeacherError, match=r"'[\w.]+' has shape \(\d+, \d+, 3, 3\) there and \(\d+, \d+, 3, 3\) here"
    ) as error:
        Trainer(
            tiny_config(init=str(supervised_run), arch_options={"width": 0.25, "pools": 1}),
            tmp_path / "wide",
            progress=False,
        )
    assert "\n" not in str(error.value)


def test_bad_init_sources_end_in_one_line(tmp_path, capsys):
    garbage = tmp_path / "model.pt"
    garbage.write_bytes(b"not a checkpoint")
    for source, message in (
        (garbage, "not a readable weights file"),
        (tmp_path / "missing", "no such run directory"),
        (tmp_path, "a run directory with no checkpoint.pt"),
    ):
        code = main(
            ["train", "--data", "digits", "--steps", "1", "--init", str(source), "--out", str(tmp_path / "run")]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_resumed_run_does_not_need_its_init_source(supervised_run, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(supervised_run, source)
    run = tmp_path / "mt"
    train(tiny_config(init=str(source), steps=20, checkpoint_every=10), run, progress=False)
    shutil.rmtree(source)
    summary = train(tiny_config(init=str(source), steps=30, checkpoint_every=10), run, resume=True, progress=False)
    assert summary["steps"] == 30
