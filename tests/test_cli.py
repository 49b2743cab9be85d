import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from meanteacher.cli import main
from meanteacher.run.train import train
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "meanteacher", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mt"
    train(tiny_config(steps=20), run, progress=False)
    return run


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--data", "digits", "--method", "ladder"], "unknown method 'ladder'"),
        (
            ["train", "--data", "digits", "--labels", "5000", "--steps", "1"],
            r"more labels requested \(5000\) than training images \(1347\)",
        ),
        (["train", "--preset", "svhn-250"], "no dataset: preset svhn-250 expects --data SVHN_DIR"),
        (["train", "--preset", "cifar10-cpu-1000"], "no dataset: preset cifar10-cpu-1000 expects --data CIFAR10"),
        (["data", "fake.tar.gz"], r"fake.tar.gz: not a readable archive \(neither a tar file nor one compressed"),
        (["train", "--data", "digits", "--set", "bogus=1"], "unknown setting 'bogus'"),
        (["train", "--data", "digits", "--consistency-type", "l1"], "unknown consistency type"),
        (["train", "--data", "/nonexistent/data"], "no such file or folder"),
        (["evaluate", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_command_lines_give_one_line(tmp_path, args, message):
    (tmp_path / "fake.tar.gz").write_bytes(b"this is not an archive")
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]


def test_resume_without_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _cli("train", "--resume", str(tmp_path / "empty"))
    assert result.returncode != 0 and "no checkpoint to resume from" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_resume_refuses_flags_it_would_ignore(finished_run, capsys):
    assert main(["train", "--resume", str(finished_run), "--time", "10m", "--data", "digits"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--data, --time cannot change it" in error[0], error


def test_evaluate_predict_report(finished_run, tmp_path, capsys):
    assert main(["evaluate", str(finished_run), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    summary = json.loads((finished_run / "summary.json").read_text())
    assert results["ema_error"] == pytest.approx(summary["ema_error"])
    assert results["student_error"] == pytest.approx(summary["student_error"])

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(images / f"{i}.png")
    Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / "big.jpg")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(finished_run), str(images), str(tmp_path / "big.jpg"), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "image,class,confidence"
    assert len(rows) == 5
    _, label, confidence = rows[1].split(",")
    assert label in [str(d) for d in range(10)] and 0.0 < float(confidence) <= 1.0

    (tmp_path / "bad.png").write_text("not an image")
    assert main(["predict", str(finished_run), str(tmp_path / "bad.png")]) == 2
    assert "bad.png: not a readable image" in capsys.readouterr().err

    capsys.readouterr()
    assert main(["report", str(finished_run.parent)]) == 0
    table = capsys.readouterr().out
    assert "| digits | 50 | mean-teacher | 20 | 1 |" in table


def test_presets_and_data_commands(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    for name in (
        "svhn-250",
        "cifar10-4000",
        "resnet-cifar10-1000",
        "resnext152-imagenet",
        "fig4-ema-decay",
        "demo-digits",
    ):
        assert name in listing
    assert main(["data", "digits", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"] == 1347 and summary["channels"] == 1


def test_train_help_states_the_ramp_shares_as_percentages(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "first 27% of the run" in text and "last 17% (the paper's" in text and "%%" not in text


def test_every_preset_is_valid():
    from meanteacher.config.checks import validate
    from meanteacher.config.toml import list_presets, load_preset

    for name in list_presets():
        config = load_preset(name)
        if not config.dataset:
            config.dataset = "placeholder"
        validate(config)


def test_demo_writes_table_and_plot(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| digits | 50 | supervised | 30 | 3 |" in out and "| digits | 50 | mean-teacher | 30 | 3 |" in out
    assert re.search(
        r"Mean Teacher's teacher: [\d.]+ ± [\d.]+ % test error vs supervised-only [\d.]+ ± [\d.]+ %", out
    ), out
    assert sorted(p.name for p in (tmp_path / "demo").iterdir() if p.is_dir()) == [
        "mean-teacher-s0",
        "mean-teacher-s1",
        "mean-teacher-s2",
        "supervised-s0",
        "supervised-s1",
        "supervised-s2",
    ]
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "results.md").read_text() in out
