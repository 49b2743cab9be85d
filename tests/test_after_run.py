"""What a user looks at after a run: per-class errors and the confusion matrix (``evaluate``, ``report
--per-class``), curves whose legend names the networks, and TensorBoard event files read back."""

import json
import sys

import pytest
from PIL import Image

from meanteacher.cli import main
from meanteacher.errors import MeanTeacherError
from meanteacher.report import ema_name, per_class_errors
from meanteacher.run.rundir import read_confusion
from meanteacher.run.train import train
from tests.helpers import tiny_config

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes of 12 training images; test images for ``ant`` and ``bee`` only."""
    root = tmp_path_factory.mktemp("after")
    for split, counts in (("train", {"ant": 12, "bee": 12, "cat": 12}), ("test", {"ant": 5, "bee": 4})):
        for k, cls in enumerate(CLASSES):
            for i in range(counts.get(cls, 0)):
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                colour = tuple((60 * k + 7 * i + 40 * c) % 256 for c in range(3))
                Image.new("RGB", (12, 12), colour).save(root / split / cls / f"{i}.png")
    return root


def run_on(folder, out, **settings):
    config = tiny_config(
        dataset=str(folder),
        labels=6,
        steps=8,
        eval_every=4,
        checkpoint_every=8,
        batch_size=12,
        labeled_per_batch=4,
        **settings,
    )
    train(config, out, progress=False)
    return out


@pytest.fixture(scope="module")
def finished(folder, tmp_path_factory):
    return run_on(folder, tmp_path_factory.mktemp("runs") / "mt")


def test_the_run_keeps_its_final_confusion_matrices(finished):
    confusion = read_confusion(finished)
    assert confusion["classes"] == list(CLASSES)
    for name in ("ema", "student"):
        matrix = confusion[name]
        assert [sum(row) for row in matrix] == [5, 4, 0]  # the test images of each true class
    assert per_class_errors(confusion["ema"])[2] is None


def test_evaluate_prints_per_class_errors_and_draws_the_matrix(finished, tmp_path, capsys):
    plot = tmp_path / "confusion.png"
    assert main(["evaluate", str(finished), "--confusion", str(plot)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in CLASSES}
    assert rows["ant"][1] == "5" and rows["bee"][1] == "4" and rows["cat"][1] == "0"
    assert rows["cat"][2:4] == ["–", "–"]  # no test images, no error rate
    assert "teacher (EMA) error %" in out and "most often taken for" in out
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] >= 300
    assert main(["evaluate", str(finished), "--json", "--confusion", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["per_class_error"]["ema"]["cat"] is None
    ema = result["confusion"]["ema"]
    wrong = sum(ema[r][c] for r in range(3) for c in range(3) if r != c)
    assert wrong / 9 == pytest.approx(result["ema_error"])
    assert result["per_class_error"]["ema"]["ant"] == pytest.approx(1 - ema[0][0] / 5)


def test_report_adds_a_per_class_table_over_seeds(folder, finished, tmp_path, capsys):
    second = run_on(folder, tmp_path / "mt-s1", seed=1)
    assert main(["report", str(finished), str(second), "--per-class"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ant ") or line.startswith("| cat ")]
    assert len(lines) == 2 and "| 2 |" in lines[0] and "±" in lines[0]
    assert "| cat | 2 | – | – |" in out


def test_curves_name_the_networks():
    assert ema_name("mean-teacher") == "teacher (EMA)" and ema_name("mean-teacher-vat") == "teacher (EMA)"
    assert ema_name("pi") == "EMA" and ema_name("supervised") == "EMA"


def test_tensorboard_events_are_read_back(folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_on(folder, tmp_path / "tb", tensorboard=True)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "error/ema_error",
        "error/student_error",
        "cost/class_cost",
        "cost/consistency_cost",
        "schedule/lr",
        "schedule/consistency_weight",
        "schedule/ema_decay",
    ):
        assert tag in scalars, scalars
    assert [event.step for event in events.Scalars("error/ema_error")] == [4, 8]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert events.Scalars("error/ema_error")[-1].value == pytest.approx(metrics[-1]["ema_error"])
    assert "confusion/ema" in events.Tags()["images"]
    assert events.Images("confusion/ema")[0].step == 8


def test_tensorboard_without_the_package_names_the_extra(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MeanTeacherError, match=r"pip install 'meanteacher\[tensorboard\]'"):
        run_on(folder, tmp_path / "no-tb", tensorboard=True)
