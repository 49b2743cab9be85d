"""A folder of ordinary photos: brought down to the run's image size as they are decoded, in bounded
memory, and a folder or label file of one class refused in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from meanteacher.data.folders import load_image_folder
from meanteacher.errors import DataError
from meanteacher.run.train import Trainer
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _photo(path: Path, width: int, height: int, shade: int) -> None:
    """A smooth JPEG photo of ``width`` x ``height`` (small on disk, large decoded)."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = (x * 0.5 + y * 0.3 + np.array([shade, 255 - shade, 128], dtype=np.float32)[None, None, :]) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, quality=80)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two classes of 12-megapixel photos (4000 x 3000), four to train on and one to test, each."""
    root = tmp_path_factory.mktemp("photos")
    for label, shade in (("cat", 40), ("dog", 200)):
        for index in range(4):
            _photo(root / "train" / label / f"{index}.jpg", 4000, 3000, shade + index)
        _photo(root / "test" / label / "0.jpg", 4000, 3000, shade)
    return root


def test_photos_are_brought_down_to_the_image_size_as_they_are_decoded(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("MEANTEACHER_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="10 images larger than 32x32 were brought down"):
        small = load_image_folder(photos, image_size=32)
    assert small.train_images.shape == (8, 3, 32, 32) and small.test_images.shape == (2, 3, 32, 32)
    assert small.classes == ["cat", "dog"]
    again = load_image_folder(photos, image_size=24)  # the cache is keyed by the size: not the 32-pixel images
    assert again.train_images.shape == (8, 3, 24, 24)
    pixel = small.train_images[0, :, 16, 16].float()
    assert 0 < pixel.mean() < 255  # the photo's content, not an empty crop


def test_decoding_large_photos_takes_bounded_memory(photos, tmp_path):
    code = (
        "import json, resource, sys\n"
        "from meanteacher.data.folders import load_image_folder\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "load_image_folder(sys.argv[1], use_cache=False, image_size=64)\n"
        "print(json.dumps([before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code, str(photos)], capture_output=True, text=True, env=env, check=True
    )
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    # one 12-megapixel photo decoded at full size is 36 MB; ten of them, kept, would be 360 MB
    assert (after - before) / 1024 < 40, f"peak memory grew by {(after - before) / 1024:.0f} MB"


def test_one_class_is_not_a_task(tmp_path):
    for index in range(6):
        _photo(tmp_path / "only" / "cat" / f"{index}.jpg", 40, 30, 10 * index)
    with pytest.raises(DataError, match="only the class 'cat'; a classifier needs images of two classes or more"):
        load_image_folder(tmp_path / "only", use_cache=False)


def test_a_label_file_of_one_class_is_refused(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i} 3\n" for i in range(10)))
    with pytest.raises(DataError, match="labels of only the class '3'"):
        Trainer(tiny_config(label_file=str(labels)), tmp_path / "run", progress=False)


def test_the_defaults_of_a_run_without_a_preset_follow_the_machine():
    from meanteacher.config import Config
    from meanteacher.config.auto import CPU_WIDTH, resolve_auto
    from meanteacher.config.toml import load_preset

    own = Config(dataset="photos", steps=1000)
    cpu = resolve_auto(own, 10, False, 100, "cpu")
    assert cpu.arch_options == {"width": CPU_WIDTH} and cpu.flip is False and cpu.eval_every == 40
    assert resolve_auto(own, 10, False, 100, "cuda").arch_options == {"width": 1.0}
    assert resolve_auto(Config(dataset="x", arch="shakeshake26"), 10, False, 100).arch_options == {}  # its own width
    chosen = Config(dataset="photos", flip=True, arch_options={"width": 0.5}, eval_every=7)
    assert resolve_auto(chosen, 10, False, 100).arch_options == {"width": 0.5}
    assert (resolve_auto(chosen, 10, False, 100).flip, resolve_auto(chosen, 10, False, 100).eval_every) == (True, 7)
    preset = resolve_auto(load_preset("cifar10-4000"), 10, False, 4000, "cpu")
    assert (
        preset.arch_options == {} and preset.flip is True and preset.eval_every == 500
    )  # the paper's, as the preset says
    assert (
        preset.student_view == "weak"
        and resolve_auto(load_preset("cifar10-cpu-1000"), 10, False, 1000).student_view == "weak"
    )


def test_the_student_view_without_a_preset_is_strong_where_it_can_be():
    from meanteacher.config import Config
    from meanteacher.config.auto import STUDENT_VIEW, resolve_auto
    from meanteacher.config.checks import validate

    assert resolve_auto(Config(dataset="photos", steps=1000), 10, False, 100).student_view == STUDENT_VIEW == "strong"
    assert resolve_auto(Config(dataset="photos", normalize="zca"), 10, False, 100).student_view == "weak"
    streamed = Config(dataset="photos", data_format="streamed-folder")
    assert resolve_auto(streamed, 10, False, 100).student_view == "weak"
    assert (
        resolve_auto(Config(dataset="photos", student_view="photometric"), 10, False, 100).student_view == "photometric"
    )
    validate(streamed)  # auto is no conflict with a streamed folder


def test_a_run_recorded_before_the_student_view_existed_resumes_with_the_papers_noise(tmp_path):
    from meanteacher.config import Config
    from meanteacher.config.auto import resolve_auto
    from meanteacher.config.toml import load_config_file, to_toml
    from meanteacher.run.rundir import RunDirectory

    resolved = resolve_auto(Config(dataset="photos", steps=1000), 10, False, 100)
    old = "\n".join(line for line in to_toml(resolved).splitlines() if not line.startswith("student_view"))
    (tmp_path / "config.toml").write_text(old)
    assert RunDirectory(tmp_path).read_config().student_view == "weak"
    assert load_config_file(tmp_path / "config.toml").student_view is None  # a user's own file: automatic


def test_the_resolved_defaults_are_recorded_in_config_toml(tmp_path):
    from meanteacher.config import Config
    from meanteacher.config.auto import resolve_auto
    from meanteacher.config.toml import load_config_file, to_toml

    resolved = resolve_auto(Config(dataset="photos", steps=1000), 10, False, 100, "cpu")
    (tmp_path / "config.toml").write_text(to_toml(resolved))
    text = (tmp_path / "config.toml").read_text()
    assert "eval_every = 40" in text and "width = 0.25" in text
    assert load_config_file(tmp_path / "config.toml") == resolved
    assert 'width = "auto"' in to_toml(Config(dataset="photos"))
