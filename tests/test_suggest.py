"""Which images to label next (``meanteacher suggest``) and the teacher's confident guesses (``predict
--label-file-out``): each strategy on planted networks, the ranking, the files written, and bad input."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from meanteacher.cli import main
from meanteacher.config import Config
from meanteacher.data.augment import Normalizer
from meanteacher.inference import LoadedRun
from meanteacher.run.train import train
from meanteacher.suggest import rank, score

from .helpers import tiny_config


class Planted(nn.Module):
    """Confident in class 0 on dark images; on bright ones uniform (``bright_class`` None) or confident in
    ``bright_class``: a teacher that has never seen bright images, and a student that disagrees there."""

    def __init__(self, bright_class=None):
        super().__init__()
        self.bright_class = bright_class

    def forward(self, x):
        brightness = x.mean(dim=(1, 2, 3))
        logits = torch.zeros(len(x), 3)
        logits[:, 0] = 10 * (1 - brightness)
        if self.bright_class is not None:
            logits[:, self.bright_class] += 10 * brightness
        return logits


def _planted_run(student_bright_class=None):
    config = Config(translate=0, flip=False)
    models = {"ema": Planted(), "student": Planted(student_bright_class)}
    return LoadedRun(config, ["a", "b", "c"], (1, 4, 4), Normalizer("none"), models)


def _images():
    """Dark (seen) images at even positions, bright (never seen) ones at odd positions."""
    images = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
    images[1::2] = 255
    return images


@pytest.mark.parametrize("by", ["entropy", "margin", "disagreement"])
def test_each_strategy_puts_what_the_teacher_never_saw_first(by):
    run = _planted_run(student_bright_class=1)
    scores, classes, confidences = score(run, _images(), by)
    order = rank(scores)
    assert sorted(order[:5]) == [1, 3, 5, 7, 9]
    assert classes[::2].eq(0).all() and confidences[::2].gt(0.99).all()


def test_disagreement_needs_the_student_and_teacher_to_differ():
    scores, _, _ = score(_planted_run(student_bright_class=None), _images(), "disagreement")
    assert scores.abs().max() < 1e-6  # the same network twice, without noise: nothing to disagree on


def test_random_ignores_the_images_and_follows_its_seed():
    run = _planted_run()
    first, _, _ = score(run, _images(), "random", seed=0)
    dark, _, _ = score(run, torch.zeros(10, 1, 4, 4, dtype=torch.uint8), "random", seed=0)
    other, _, _ = score(run, _images(), "random", seed=1)
    assert torch.equal(first, dark) and not torch.equal(first, other)


def test_balanced_picks_take_each_predicted_class_in_turn():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    classes = torch.tensor([0, 0, 0, 1, 1, 2])
    assert rank(scores) == [0, 1, 2, 3, 4, 5]
    assert rank(scores, classes) == [0, 3, 5, 1, 4, 2]


def _folder_with_pile(root: Path) -> Path:
    from meanteacher.data.formats.digits import load_digits

    digits = load_digits()
    for index in range(120):
        label = int(digits.train_labels[index])
        folder = root / ("unlabeled" if index >= 100 else f"digit{label}")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.train_images[index, 0].numpy()).save(folder / f"{index:03d}.png")
    return root


@pytest.fixture(scope="module")
def pile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    data = _folder_with_pile(root / "photos")
    run = root / "run"
    config = tiny_config(dataset=str(data), labels=0, steps=4, eval_every=4, arch_options={"width": 0.125, "pools": 1})
    train(config, run, progress=False)
    return run, data


def test_suggest_writes_the_ranked_csv_and_copies_the_original_files(pile_run, tmp_path, capsys):
    run, data = pile_run
    out, picked = tmp_path / "next.csv", tmp_path / "to-label"
    assert main(["suggest", str(run), "--n", "5", "--by", "entropy", "--out", str(out), "--copy-to", str(picked)]) == 0
    assert "5 images to label next (by entropy) of 20" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open()))
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert list(rows[0]) == ["rank", "image", "predicted_class", "confidence", "entropy_score"]
    scores = [float(row["entropy_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    copies = sorted(picked.iterdir())
    assert len(copies) == 5 and copies[0].name.startswith("00001-")
    original = data / "unlabeled" / copies[0].name.split("-", 1)[1]
    assert copies[0].read_bytes() == original.read_bytes()


def test_suggest_ranks_a_runs_hidden_labels_and_saves_images_without_files(tmp_path, capsys):
    run = tmp_path / "digits"
    train(tiny_config(steps=4, eval_every=4), run, progress=False)
    picked = tmp_path / "picked"
    assert main(["suggest", str(run), "--n", "3", "--by", "disagreement", "--balanced", "--copy-to", str(picked)]) == 0
    assert "of 1,297" in capsys.readouterr().out  # 1,347 training images, 50 labeled
    assert (run / "suggest-disagreement.csv").is_file()
    saved = sorted(picked.iterdir())
    assert len(saved) == 3 and np.asarray(Image.open(saved[0])).shape == (8, 8)


def test_bad_input_to_suggest_ends_in_one_line(pile_run, tmp_path, capsys):
    run, data = pile_run
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    no_networks = tmp_path / "no-networks"  # a run that has not saved its teacher yet
    no_networks.mkdir()
    (no_networks / "config.toml").write_text((run / "config.toml").read_text())
    all_labeled = tmp_path / "all-labeled"
    train(
        tiny_config(dataset=str(data), labels=0, steps=2, arch_options={"width": 0.125, "pools": 1}),
        all_labeled,
        progress=False,
    )
    (tmp_path / "empty-pile").mkdir()
    cases = [
        ([str(empty)], "not a run directory (no config.toml)"),
        ([str(no_networks)], "checkpoint.pt"),
        ([str(run), "--n", "21"], "more than the 20 unlabeled images"),
        ([str(run), "--n", "0"], "--n must be at least 1"),
        ([str(run), "--from", str(tmp_path / "empty-pile")], "an unlabeled pile with no files"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(["suggest", *args]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error, error
    assert not (run / "suggest-random.csv").exists()


def test_predict_writes_only_the_images_the_teacher_is_sure_of_as_a_label_file(pile_run, tmp_path, capsys):
    run, data = pile_run
    everything, sure = tmp_path / "all.txt", tmp_path / "sure.txt"
    assert (
        main(
            ["predict", str(run), str(data / "unlabeled"), "--label-file-out", str(everything), "--min-confidence", "0"]
        )
        == 0
    )
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    lines = everything.read_text().splitlines()
    assert lines == [f"{row['image']} {row['class']}" for row in rows]
    threshold = sorted(float(row["confidence"]) for row in rows)[10]
    assert (
        main(
            [
                "predict",
                str(run),
                str(data / "unlabeled"),
                "--label-file-out",
                str(sure),
                "--min-confidence",
                str(threshold),
            ]
        )
        == 0
    )
    kept = sure.read_text().splitlines()
    assert 0 < len(kept) <= 10 and set(kept) <= set(lines)
    capsys.readouterr()
    assert main(["predict", str(run), str(data), "--label-file-out", str(sure), "--min-confidence", "1.5"]) == 2
    assert "--min-confidence must be between 0 and 1" in capsys.readouterr().err
