import random

import pytest
import torch
from PIL import Image

from meanteacher.data.sampler import TwoStreamBatches
from meanteacher.data.streaming import StepBatchSampler, eval_view, index_image_folder, train_view
from meanteacher.run.train import train
from tests.helpers import tiny_config


def _folder(root, size=(40, 30)):
    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog")):
            (root / split / name).mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", size, (120 * c + 10 * i, 50, 200 - 30 * c)).save(root / split / name / f"{i}.jpg")
    return root


def test_appendix_b22_views():
    image = Image.new("RGB", (64, 48), (200, 30, 60))
    rng = random.Random(0)
    first, second = train_view(image, 32, rng), train_view(image, 32, rng)
    assert first.shape == second.shape == (3, 32, 32)
    assert not torch.equal(first, second)  # colour jitter / crop differ between draws
    assert eval_view(image, 32).shape == (3, 32, 32)
    assert torch.equal(eval_view(image, 32), eval_view(image, 32))


def test_index_and_sharded_step_batches(tmp_path):
    index = index_image_folder(_folder(tmp_path / "pets"), image_size=32)
    assert index.classes == ["cat", "dog"] and len(index.train_files) == 12 and len(index.test_files) == 12
    batches = TwoStreamBatches(torch.tensor([0, 6]), torch.arange(12), 8, 2, seed=0, num_examples=12)
    whole = next(iter(StepBatchSampler(batches, start=3)))
    shards = [next(iter(StepBatchSampler(batches, start=3, rank=r, world_size=2))) for r in (0, 1)]
    assert sorted(whole) == sorted(shards[0] + shards[1])
    assert [sum(used for _, used, _ in s) for s in shards] == [1, 1]  # each shard keeps one labeled example


def test_streaming_training_run(tmp_path):
    data = _folder(tmp_path / "pets")
    config = tiny_config(
        dataset=str(data),
        labels=4,
        data_format="streamed-folder",
        image_size=32,
        workers=0,
        steps=4,
        batch_size=8,
        labeled_per_batch=2,
        eval_every=2,
        checkpoint_every=2,
        arch_options={"width": 0.125},
    )
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["steps"] == 4 and summary["dataset"] == "pets"
    assert 0.0 <= summary["ema_error"] <= 1.0
    from meanteacher.inference import load_run

    run = load_run(tmp_path / "run")
    assert run.evaluate()["ema_error"] == summary["ema_error"]
    rows = run.predict_paths([str(data / "test" / "dog")])
    assert len(rows) == 6 and all(label in ("cat", "dog") for _, label, _ in rows)


def test_a_streamed_folder_is_a_data_format_asked_for_by_name(tmp_path):
    from meanteacher.data.formats import detect_format, is_streamed
    from meanteacher.data.sources import load_dataset
    from meanteacher.errors import DataError

    data = _folder(tmp_path / "pets")
    assert detect_format(data).name == "image-folder" and not is_streamed("auto") and is_streamed("streamed-folder")
    index = load_dataset(data, data_format="streamed-folder", image_size=48)
    assert index.streamed and not load_dataset(data, image_size=64).streamed
    assert index.image_shape == (3, 48, 48) and index.format == "streamed-folder"
    summary = index.summary()
    assert summary["train"] == summary["test"] == 12 and summary["train_per_class"] == {"cat": 6, "dog": 6}
    assert summary["format"] == "streamed-folder" and summary["unlabeled"] == 0
    with pytest.raises(DataError, match="unlabeled pile"):
        load_dataset(data, unlabeled=[str(data / "train" / "cat")], data_format="streamed-folder")


def test_a_folder_the_streamed_format_cannot_read_says_how_to_read_it(tmp_path):
    import shutil

    from meanteacher.data.sources import load_dataset
    from meanteacher.errors import DataError

    data = _folder(tmp_path / "pets")
    archive = shutil.make_archive(str(tmp_path / "pets"), "zip", data)
    with pytest.raises(DataError, match="not a file or an archive"):
        load_dataset(archive, data_format="streamed-folder")
    (data / "unlabeled").mkdir()
    Image.new("RGB", (40, 30)).save(data / "unlabeled" / "0.jpg")
    with pytest.raises(DataError, match="--data-format image-folder") as raised:
        load_dataset(data, data_format="streamed-folder")
    assert "\n" not in str(raised.value)
    assert load_dataset(data, image_size=32).pile_size == 1  # the way out it names reads the pile


def test_the_streaming_flag_of_an_older_run_reads_as_the_streamed_format(tmp_path):
    from meanteacher.config import Config, apply_settings
    from meanteacher.config.toml import load_config_file, to_toml
    from meanteacher.errors import MeanTeacherError

    text = to_toml(Config(dataset="pets"))
    (tmp_path / "streamed.toml").write_text("streaming = true\n" + text)
    (tmp_path / "in-memory.toml").write_text("streaming = false\n" + text)
    assert load_config_file(tmp_path / "streamed.toml", run_record=True).data_format == "streamed-folder"
    assert load_config_file(tmp_path / "in-memory.toml", run_record=True).data_format == "auto"
    with pytest.raises(MeanTeacherError, match="streamed-folder"):
        apply_settings(Config(), {"streaming": "true"}, "--set")
