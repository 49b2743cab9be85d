"""A few labeled class folders plus a pile of unlabeled images: the layouts, ``--unlabeled``, files as
users have them, and a pile trained exactly as the same images given as a label file."""

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meanteacher.cli import main
from meanteacher.config.toml import load_config_file
from meanteacher.data.formats.digits import load_digits
from meanteacher.data.pile import ImageProgress, check_memory, decode_pile
from meanteacher.data.sources import load_dataset
from meanteacher.errors import DataError
from meanteacher.run.train import Trainer

DIGITS = load_digits()


def _png(index: int, size: int = 8, mode: str = "L") -> Image.Image:
    image = Image.fromarray(DIGITS.train_images[index, 0].numpy())
    return image.resize((size, size), Image.NEAREST).convert(mode)


def _save(path: Path, index: int, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _png(index, **options).save(path)


def _classes(root: Path, split: str = "train", per_class: int = 6) -> None:
    """Two class folders of digits 0 and 1 under ``root/split`` (``split`` "" for plain class folders)."""
    for digit in (0, 1):
        members = np.flatnonzero(DIGITS.train_labels.numpy() == digit)[:per_class]
        for number, index in enumerate(members):
            _save(root / split / f"digit{digit}" / f"{number:03d}.png", int(index))


def _pile(folder: Path, count: int, start: int = 100) -> None:
    for number in range(count):
        _save(folder / f"{number:03d}.png", start + number)


def _data(capsys, *args) -> dict:
    assert main(["data", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("pile_name", ["unlabeled", "Unlabelled", "UNLABELED"])
def test_a_pile_beside_the_split_folders_is_never_a_class_nor_a_test_image(tmp_path, capsys, pile_name):
    _classes(tmp_path)
    _classes(tmp_path, "test", per_class=2)
    _pile(tmp_path / pile_name, 3)
    _pile(tmp_path / pile_name / "deeper" / "still", 2, start=200)
    summary = _data(capsys, str(tmp_path))
    assert summary["classes"] == ["digit0", "digit1"]
    assert (summary["train"], summary["test"], summary["unlabeled"]) == (12, 4, 5)


def test_a_pile_beside_plain_class_folders_stays_out_of_the_held_out_test_set(tmp_path, capsys):
    _classes(tmp_path, "", per_class=10)
    _pile(tmp_path / "unlabeled", 7)
    summary = _data(capsys, str(tmp_path))
    assert summary["classes"] == ["digit0", "digit1"]
    assert (summary["train"], summary["test"], summary["unlabeled"]) == (16, 4, 7)
    assert main(["data", str(tmp_path)]) == 0
    assert "7 unlabeled (the pile)" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_an_archive_holds_the_pile_as_a_folder_does(tmp_path, capsys, suffix):
    _classes(tmp_path / "photos")
    _pile(tmp_path / "photos" / "unlabeled" / "a", 4)
    archive = tmp_path / f"photos{suffix}"
    files = sorted(p for p in (tmp_path / "photos").rglob("*") if p.is_file())
    if suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as out:
            for file in files:
                out.write(file, file.relative_to(tmp_path).as_posix())
    else:
        with tarfile.open(archive, "w:gz") as out:
            out.add(tmp_path / "photos", arcname="photos")
    from_folder = load_dataset(tmp_path / "photos")
    from_archive = load_dataset(archive)
    assert from_archive.pile_size == 4
    assert from_archive.unlabeled_images.equal(from_folder.unlabeled_images)


def test_unlabeled_paths_repeat_and_bring_every_image_to_the_runs_shape(tmp_path, capsys):
    """A folder of mixed sizes and colour modes, an archive and a text file of paths, added to the digits
    (8x8, one channel): every readable image joins, at 1x8x8."""
    folder = tmp_path / "pile"
    _save(folder / "small.png", 1, size=4)
    _save(folder / "large.jpg", 2, size=40, mode="RGB")
    _save(folder / "nested" / "rgba.png", 3, size=8, mode="RGBA")
    listed = tmp_path / "listed"
    _pile(listed, 3)
    (tmp_path / "list.txt").write_text(
        "# three images\nlisted/000.png\n\nlisted/001.png\n" + str(listed / "002.png") + "\n"
    )
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as out:
        buffer = io.BytesIO()
        _png(5, size=12, mode="RGB").save(buffer, format="PNG")
        out.writestr("any/name/at/all.png", buffer.getvalue())
    dataset = load_dataset("digits", unlabeled=[folder, tmp_path / "list.txt", archive])
    assert dataset.pile_size == 3 + 3 + 1
    assert dataset.unlabeled_images.shape[1:] == (1, 8, 8)
    assert dataset.unlabeled_images.dtype == DIGITS.train_images.dtype
    listed_exact = load_dataset("digits", unlabeled=[tmp_path / "list.txt"]).unlabeled_images
    assert listed_exact.equal(DIGITS.train_images[100:103])  # 8x8 greyscale files come back unchanged


def test_unreadable_files_are_skipped_with_one_warning_and_none_readable_is_an_error(tmp_path, capsys):
    pile = tmp_path / "pile"
    _pile(pile, 3)
    (pile / "broken.png").write_bytes(b"not an image at all")
    (pile / "notes.txt").write_text("taken on holiday")
    with pytest.warns(
        UserWarning, match=r"2 unreadable file\(s\) skipped in the unlabeled pile, the first .*broken.png"
    ):
        dataset = load_dataset("digits", unlabeled=[pile])
    assert dataset.pile_size == 3
    for file in ("000.png", "001.png", "002.png"):
        (pile / file).unlink()
    with pytest.raises(DataError, match="none of its 2 files is a readable image"):
        load_dataset("digits", unlabeled=[pile])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda path: path.mkdir(), "an unlabeled pile with no files"),
        (lambda path: None, "no such file or folder"),
    ],
)
def test_an_empty_or_missing_pile_ends_in_one_line_and_writes_nothing(tmp_path, capsys, make, message):
    make(tmp_path / "pile")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            "digits",
            "--unlabeled",
            str(tmp_path / "pile"),
            "--steps",
            "2",
            "--out",
            str(run),
            "--quiet",
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and "\n" not in error
    assert not run.exists()


def test_a_pile_too_large_for_memory_names_the_size_it_needs():
    with pytest.raises(
        DataError,
        match=r"50,000 unlabeled images at 224x224 with 3 channel\(s\) need 7.0 GiB in memory, 4.0 GiB is free",
    ):
        check_memory(50_000, (3, 224, 224), "photos", available=4 * 2**30)
    check_memory(50_000, (3, 32, 32), "photos", available=4 * 2**30)


def test_a_large_pile_shows_its_decoding_progress_in_plain_lines_without_a_terminal():
    buffer = io.BytesIO()
    _png(0).save(buffer, format="PNG")
    stream = io.StringIO()
    pile = decode_pile([(f"{i}.png", buffer.getvalue()) for i in range(1000)], (1, 8, 8), "pile", stream)
    lines = stream.getvalue().splitlines()
    assert len(pile["ids"]) == 1000 and "\r" not in stream.getvalue()
    assert len(lines) == 10 and lines[-1].startswith("pile: unlabeled pile: 1,000/1,000 images decoded")
    assert not ImageProgress(999, "small", io.StringIO()).shown


def _two_ways(root: Path) -> tuple[Path, Path, Path]:
    """The same images as class folders plus a pile, and as one labeled folder with a label file naming
    the labeled ones. The pile's images are class 1's last ones, so both keep them in the same order."""
    labeled = {
        0: np.flatnonzero(DIGITS.train_labels.numpy() == 0)[:20],
        1: np.flatnonzero(DIGITS.train_labels.numpy() == 1)[:20],
    }
    hidden = np.flatnonzero(DIGITS.train_labels.numpy() == 1)[20:60]
    pile_way, label_way = root / "with_pile", root / "labeled"
    lines = []
    for digit, members in labeled.items():
        for number, index in enumerate(members):
            for way in (pile_way, label_way):
                _save(way / "train" / f"digit{digit}" / f"{number:03d}.png", int(index))
            lines.append(f"digit{digit}/{number:03d}.png digit{digit}")
    for number, index in enumerate(hidden, start=100):
        _save(pile_way / "unlabeled" / f"{number:03d}.png", int(index))
        _save(label_way / "train" / "digit1" / f"{number:03d}.png", int(index))
    for way in (pile_way, label_way):
        _classes(way, "test", per_class=5)
    (root / "labels.txt").write_text("\n".join(lines) + "\n")
    return pile_way, label_way, root / "labels.txt"


TINY_FLAGS = [
    "--steps",
    "12",
    "--batch-size",
    "16",
    "--labeled-per-batch",
    "8",
    "--precision",
    "fp32",
    "--student-view",
    "weak",
    "--set",
    "arch_options.width=0.125",
    "--set",
    "arch_options.pools=1",
    "--set",
    "eval_every=6",
    "--quiet",
]


def test_a_pile_trains_bit_for_bit_as_the_same_images_given_by_a_label_file(tmp_path, capsys):
    pile_way, label_way, label_file = _two_ways(tmp_path)
    assert main(["train", "--data", str(pile_way), "--out", str(tmp_path / "a"), *TINY_FLAGS]) == 0
    assert (
        main(
            [
                "train",
                "--data",
                str(label_way),
                "--label-file",
                str(label_file),
                "--out",
                str(tmp_path / "b"),
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    first, second = (tmp_path / name / "metrics.jsonl" for name in "ab")
    assert len(first.read_text().splitlines()) == 2
    assert first.read_bytes() == second.read_bytes()


def test_the_plan_line_counts_the_pile_and_supervised_only_says_it_leaves_it(tmp_path, capsys):
    pile_way, _, _ = _two_ways(tmp_path)
    assert main(["train", "--data", str(pile_way), "--out", str(tmp_path / "mt"), *TINY_FLAGS[:-1]]) == 0
    assert (
        "40 labeled (20 per class, 2 classes), 40 unlabeled (40 from the pile, 0 with labels hidden); 12 steps of 16 images (8 labeled, 50%"
        in capsys.readouterr().err
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(pile_way),
                "--method",
                "supervised",
                "--out",
                str(tmp_path / "sup"),
                *TINY_FLAGS[:-1],
            ]
        )
        == 0
    )
    assert (
        "40 unlabeled (40 from the pile, 0 with labels hidden), which supervised-only does not use"
        in capsys.readouterr().err
    )


def test_a_run_records_its_pile_and_resumes_with_it_from_anywhere(tmp_path, capsys, monkeypatch):
    pile = tmp_path / "pile"
    _pile(pile, 30)
    monkeypatch.chdir(tmp_path)
    assert (
        main(["train", "--data", "digits", "--labels", "20", "--unlabeled", "pile", *TINY_FLAGS, "--out", "whole"]) == 0
    )
    config = load_config_file(tmp_path / "whole" / "config.toml")
    assert config.unlabeled == [str(pile.resolve())]
    interrupted = Trainer(config, tmp_path / "cut", progress=False)
    assert interrupted.dataset.pile_size == 30
    for _ in range(6):
        interrupted.step()
    interrupted.run_dir.write_config(interrupted.config)
    interrupted.save_checkpoint()
    monkeypatch.chdir(tmp_path / "cut")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()[-1] == (
        tmp_path / "whole" / "metrics.jsonl"
    ).read_text().splitlines()[-1]
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "cut"), "--unlabeled", str(pile)]) == 2
    assert "--unlabeled cannot change it" in capsys.readouterr().err


def test_a_pile_in_an_archive_is_decoded_as_it_streams_with_a_count_for_progress(tmp_path):
    buffer = io.BytesIO()
    _png(0).save(buffer, format="PNG")
    members = ((f"{i}.png", buffer.getvalue()) for i in range(ImageProgress.UNKNOWN_EVERY))  # a generator: no total
    stream = io.StringIO()
    pile = decode_pile(members, (1, 8, 8), "archive.tar", stream)
    assert len(pile["ids"]) == ImageProgress.UNKNOWN_EVERY
    lines = stream.getvalue().splitlines()
    assert (
        lines[0].startswith("archive.tar: unlabeled pile: 5,000 images decoded") and len(lines) == 2
    )  # and the closing line
