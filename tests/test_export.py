"""Exporting the teacher (or student) of a run and loading it back as a plain module for inference."""

import csv
import io
import json

import pytest
import torch
from PIL import Image

from meanteacher import load_model
from meanteacher.cli import main
from meanteacher.errors import MeanTeacherError
from meanteacher.inference import exported_normalizer, load_run
from meanteacher.run.train import train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mt"
    train(tiny_config(steps=20), run, progress=False)
    return run


def test_export_and_load_give_the_predictions_of_meanteacher_predict(run_dir, tmp_path, capsys):
    out = tmp_path / "export" / "model.pt"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    description = json.loads(out.with_suffix(".json").read_text())
    assert (
        description["network"] == "teacher" and description["arch"] == "convnet13" and len(description["classes"]) == 10
    )
    state = torch.load(out, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())  # a plain state_dict

    model = load_model(out)
    assert not model.training
    run = load_run(run_dir)
    images = run.normalizer.prepare(torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8))
    with torch.no_grad():
        exported_logits = model(exported_normalizer(out)(images))
        assert torch.equal(exported_logits, run.predictor(run.normalizer(images)))
        assert torch.equal(load_model(run_dir)(run.normalizer(images)), exported_logits)

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(torch.randint(0, 256, (8, 8), dtype=torch.uint8).numpy()).save(folder / f"{i}.png")
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(folder)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    from meanteacher.inference import read_image

    pixels = torch.stack([read_image(folder / f"{i}.png", (1, 8, 8)) for i in range(4)])
    with torch.no_grad():
        classes = model(exported_normalizer(out)(pixels)).argmax(1)
    assert [row["class"] for row in rows] == [description["classes"][int(c)] for c in classes]


def test_student_export_differs_from_the_teacher(run_dir, tmp_path):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "student.pt"), "--which", "student"]) == 0
    student, teacher = load_model(tmp_path / "student.pt"), load_model(run_dir, which="teacher")
    assert json.loads((tmp_path / "student.json").read_text())["network"] == "student"
    assert any(not torch.equal(a, b) for a, b in zip(student.parameters(), teacher.parameters()))


def test_bad_exports_are_one_line_errors(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"not weights")
    with pytest.raises(MeanTeacherError, match="no weights.json beside it"):
        load_model(tmp_path / "weights.pt")
    (tmp_path / "weights.json").write_text(
        json.dumps(
            {"format": 1, "arch": "convnet13", "arch_options": {}, "classes": ["a", "b"], "image_shape": [1, 8, 8]}
        )
    )
    with pytest.raises(MeanTeacherError, match="weights do not load into convnet13"):
        load_model(tmp_path / "weights.pt")
    with pytest.raises(MeanTeacherError, match="no such run directory or exported model"):
        load_model(tmp_path / "missing.pt")
