import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from meanteacher.errors import MeanTeacherError
from meanteacher.run.hyperparameters import hyperparameters_at
from meanteacher.run.rundir import load_checkpoint
from meanteacher.run.train import Trainer, train
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contents(tmp_path):
    summary = train(tiny_config(), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.toml", "metrics.jsonl", "checkpoint.pt", "summary.json", "curves.png", "labels.txt"):
        assert (run / name).is_file(), name
    assert set(summary) >= {
        "method",
        "dataset",
        "labels",
        "seed",
        "steps",
        "student_error",
        "ema_error",
        "seconds",
        "images_per_second",
    }
    assert summary["labels"] == 50 and summary["steps"] == 30 and summary["dataset"] == "digits"
    records = _metrics(run)
    assert [r["step"] for r in records] == [10, 20, 30]
    assert {"class_cost", "consistency_cost", "lr", "student_error", "ema_error"} <= set(records[0])
    assert len((run / "labels.txt").read_text().splitlines()) == 50
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 30 and state["arch"] == "convnet13"


@pytest.mark.parametrize("method", ["supervised", "pi", "temporal-ensembling"])
def test_other_methods_train(tmp_path, method):
    trainer = Trainer(tiny_config(method=method, steps=60, labeled_per_batch=-1), tmp_path / method, progress=False)
    summary = trainer.run()
    assert summary["method"] == method
    assert 0.0 <= summary["student_error"] <= 1.0
    if method == "temporal-ensembling":
        assert trainer.training_step.method.epochs == int(60 * 32 / 1347)
    assert 0.0 <= summary["ema_error"] <= 1.0  # every method is evaluated on EMA weights too


def test_schedules_of_paper_defaults():
    from meanteacher.config.toml import load_preset

    config = load_preset("svhn-250")
    start, ramped, end = (hyperparameters_at(config, s) for s in (0, 40_000, 179_999))
    assert start["ema_decay"] == 0.99 and ramped["ema_decay"] == 0.999
    assert start["adam_beta2"] == 0.99 and ramped["adam_beta2"] == 0.999
    assert ramped["lr"] == pytest.approx(0.003)
    assert end["lr"] == pytest.approx(0.003) and end["adam_beta1"] == 0.9  # SVHN: no ramp-down (Table 7)
    assert ramped["consistency_weight"] == 1.0
    end = hyperparameters_at(load_preset("cifar10-4000"), 150_000)
    assert end["lr"] < 1e-6 and end["adam_beta1"] == pytest.approx(0.5, abs=1e-3)


def _wait_for_checkpoint(run_dir, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run_dir / "checkpoint.pt").is_file() and process.poll() is None:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_sigkill_and_resume_is_bit_identical(tmp_path):
    settings = [
        "--set",
        "steps=90",
        "--set",
        "eval_every=15",
        "--set",
        "checkpoint_every=15",
        "--set",
        "checkpoint_seconds=0",
    ]
    config_args = [
        "--data",
        "digits",
        "--labels",
        "50",
        "--set",
        "arch_options.width=0.125",
        "--set",
        "arch_options.pools=1",
        "--batch-size",
        "32",
        "--labeled-per-batch",
        "8",
        "--set",
        "rampup_steps=20",
        "--set",
        "rampdown_steps=20",
        "--consistency",
        "1",
        "--quiet",
    ] + settings
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    whole = tmp_path / "whole"
    subprocess.run(
        [sys.executable, "-m", "meanteacher", "train", *config_args, "--out", str(whole)], check=True, env=env
    )
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "meanteacher", "train", *config_args, "--out", str(killed)], env=env
    )
    assert _wait_for_checkpoint(killed, process), "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = load_checkpoint(killed / "checkpoint.pt")["step"]
    assert stopped_at < 90
    subprocess.run(
        [sys.executable, "-m", "meanteacher", "train", "--resume", str(killed), "--quiet"], check=True, env=env
    )
    assert _metrics(killed) == _metrics(whole)
    a = load_checkpoint(whole / "checkpoint.pt")
    b = load_checkpoint(killed / "checkpoint.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_nonfinite_loss_stops_with_last_good_checkpoint(tmp_path):
    config = tiny_config(
        arch="tests.helpers:nan_after", arch_options={"width": 0.125, "pools": 1, "steps": 25}, method="supervised"
    )
    with pytest.raises(MeanTeacherError, match="non-finite") as error:
        train(config, tmp_path / "run", progress=False)
    assert "step 20" in str(error.value)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 20
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


def test_resume_refuses_other_architecture(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(steps=10), run, progress=False)
    config_text = (run / "config.toml").read_text().replace('arch = "convnet13"', 'arch = "shakeshake26"')
    (run / "config.toml").write_text(config_text)
    from meanteacher.run.rundir import RunDirectory

    with pytest.raises(MeanTeacherError, match="architecture 'convnet13', not 'shakeshake26'"):
        train(RunDirectory(run).read_config(), run, resume=True, progress=False)
    with pytest.raises(MeanTeacherError, match="already exists"):
        train(tiny_config(steps=10), run, progress=False)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(MeanTeacherError, match="not a readable meanteacher checkpoint"):
        load_checkpoint(path)


def test_speed_flags_on_cpu(tmp_path):
    """bf16 autocast and channels_last are flags with safe defaults; the CPU path trains with them."""
    summary = train(tiny_config(precision="bf16", channels_last=True, steps=60), tmp_path / "fast", progress=False)
    assert summary["student_error"] < 0.8  # learning: chance is 0.9


@pytest.mark.slow
def test_compiled_step_on_cpu(tmp_path, monkeypatch):
    """``compile`` (student and teacher through torch.compile) trains like the eager step (with
    inductor told to draw noise and dropout masks as eager PyTorch does)."""
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    config = tiny_config(steps=16, batch_size=128, labeled_per_batch=-1, eval_every=8, checkpoint_every=8)
    eager = Trainer(config, tmp_path / "eager", progress=False)
    eager.run()
    compiled = Trainer(tiny_config(**{**config.to_dict(), "compile": True}), tmp_path / "compiled", progress=False)
    assert compiled.training_step.method.teacher_forward is not compiled.training_step.method.teacher.module
    compiled.run()
    for a, b in zip(
        eager.training_step.method.teacher.module.parameters(),
        compiled.training_step.method.teacher.module.parameters(),
    ):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("seconds, written", [(0.0, [10, 20, 30]), (3600.0, [30])])
def test_checkpoints_are_spaced_in_steps_and_in_time(tmp_path, monkeypatch, seconds, written):
    trainer = Trainer(tiny_config(checkpoint_seconds=seconds), tmp_path, progress=False)
    steps = []
    save = trainer.save_checkpoint
    monkeypatch.setattr(trainer, "save_checkpoint", lambda: (steps.append(trainer.global_step), save()))
    trainer.run()
    assert steps == written  # the last step always writes one


def test_the_plan_and_a_first_estimate_come_before_the_second_step(tmp_path, monkeypatch):
    import io

    from tests.helpers import Watched

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: plain lines
    Watched.seen.clear()
    Trainer(
        tiny_config(method="supervised", arch="tests.helpers:watched", steps=3, eval_every=3), tmp_path, progress=True
    ).run()
    before_second_step = Watched.seen[0]
    assert "run directory" in before_second_step  # the plan line
    assert "first step" in before_second_step and "to go" in before_second_step  # estimated from one timed step
    assert "step 1/3" in before_second_step and "images/s" in before_second_step  # the progress line
