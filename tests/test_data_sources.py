import gzip
import pickle
import struct
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from meanteacher.data.folders import load_image_folder
from meanteacher.data.sources import load_dataset
from meanteacher.errors import DataError


def _png(path, size=(8, 8), color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


def _folder(root, classes=("cat", "dog"), per_class=3, size=(8, 8), mode="RGB"):
    for split in ("train", "test"):
        for ci, name in enumerate(classes):
            for i in range(per_class):
                _png(root / split / name / f"{i}.png", size, (ci * 100, i * 10, 5), mode)
    return root


def test_cifar10_pickle_directory_and_archive(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 1]}
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b", b"c"]}))
    data = load_dataset(root)
    assert data.train_images.shape == (20, 3, 32, 32) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (4, 3, 32, 32)
    assert data.classes == ["a", "b", "c"]
    first = pickle.loads((root / "data_batch_1").read_bytes())[b"data"][0].reshape(3, 32, 32)
    assert np.array_equal(data.train_images[0].numpy(), first)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="cifar-10-batches-py")
    from_archive = load_dataset(archive)
    assert torch.equal(from_archive.train_images, data.train_images)
    (root / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset(root)


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("train", "test"):
        batch = {
            b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
            b"fine_labels": [5, 7, 99],
            b"coarse_labels": [0, 1, 2],
        }
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    (tmp_path / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}))
    data = load_dataset(tmp_path)
    assert data.name == "cifar100" and data.num_classes == 100
    assert data.train_labels.tolist() == [5, 7, 99]


def test_svhn_mat_with_label_ten_as_zero(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 3), ("extra", 7)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [2], [3], [4], [5], [6]][:n], dtype=np.uint8)
        savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    data = load_dataset(tmp_path, extra=True)
    assert data.train_images.shape == (5, 3, 32, 32)
    assert data.train_labels.tolist() == [0, 1, 2, 3, 4]
    assert data.extra_images.shape == (7, 3, 32, 32)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_dataset(tmp_path)


def _idx(path, array):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_gz(tmp_path):
    rng = np.random.default_rng(0)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28)))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 9]))
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (2, 28, 28)))
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([3, 4]))
    data = load_dataset(tmp_path)
    assert data.train_images.shape == (6, 1, 28, 28)
    assert data.num_classes == 10
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="t10k-labels"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("kind", ["folder", "tar", "tar.gz", "zip"])
def test_image_folder_and_archives(tmp_path, kind):
    root = _folder(tmp_path / "pets")
    if kind == "folder":
        path = root
    elif kind == "zip":
        path = tmp_path / "pets.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for file in root.rglob("*.png"):
                archive.write(file, "pets/" + file.relative_to(root).as_posix())
    else:
        path = tmp_path / f"pets.{kind}"
        with tarfile.open(path, "w:gz" if kind == "tar.gz" else "w") as archive:
            archive.add(root, arcname="pets")
    data = load_dataset(path)
    assert data.classes == ["cat", "dog"]
    assert data.train_images.shape == (6, 3, 8, 8)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.train_ids[0] == "cat/0.png"
    assert data.train_images[3, 0, 0, 0].item() == 100  # dog's red channel


def test_grayscale_folder_and_separate_test_folder(tmp_path):
    train = tmp_path / "train_only"
    test = tmp_path / "held"
    for name in ("a", "b"):
        for i in range(2):
            _png(train / name / f"{i}.png", (5, 7), (40, 0, 0), mode="L")
            _png(test / name / f"{i}.png", (5, 7), (80, 0, 0), mode="L")
    data = load_image_folder(train, test)
    assert data.train_images.shape == (4, 1, 7, 5)
    assert data.test_images.shape == (4, 1, 7, 5)


def test_shared_cifar10_jpeg_loads_and_caches(shared_cifar, tmp_path):
    import time

    data = load_dataset(shared_cifar)
    assert data.num_classes == 10
    assert data.train_images.shape == (50_000, 3, 32, 32)
    assert data.test_images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(data.train_labels).tolist() == [5000] * 10
    start = time.perf_counter()
    again = load_dataset(shared_cifar)
    assert time.perf_counter() - start < 3.0
    assert torch.equal(again.train_images, data.train_images)


def test_cache_invalidated_when_source_changes(tmp_path):
    root = _folder(tmp_path / "pets")
    first = load_dataset(root)
    _png(root / "train" / "cat" / "0.png", color=(7, 7, 7))
    import os

    os.utime(root / "train" / "cat" / "0.png", ns=(1, 1))
    second = load_dataset(root)
    assert first.train_images[0, 0, 0, 0].item() == 0
    assert second.train_images[0, 0, 0, 0].item() == 7


def _expect(path, match):
    with pytest.raises(DataError, match=match):
        load_dataset(path)


def test_bad_image_folders(tmp_path):
    root = _folder(tmp_path / "truncated")
    bad = root / "train" / "cat" / "1.png"
    bad.write_bytes(bad.read_bytes()[:20])
    _expect(root, r"cat/1.png: not a readable image")

    root = _folder(tmp_path / "text")
    (root / "train" / "dog" / "notes.txt").write_text("hello")
    _expect(root, r"notes.txt: not an image file")

    root = _folder(tmp_path / "empty")
    (root / "train" / "bird").mkdir()
    (root / "test" / "bird").mkdir()
    _expect(root, r"missing split|empty class")

    (tmp_path / "no-images" / "cat").mkdir(parents=True)
    _expect(tmp_path / "no-images", r"no images found")

    fake = tmp_path / "fake.tar.gz"
    fake.write_bytes(b"this is not gzip")
    _expect(fake, r"fake.tar.gz: not a readable archive")

    _expect(tmp_path / "nothing-here", "no such file")


def test_a_folder_of_mixed_sizes_and_modes_loads_at_the_most_common_size(tmp_path):
    from meanteacher.errors import DataWarning

    root = _folder(tmp_path / "photos", size=(10, 8))  # 10 wide, 8 high
    _png(root / "train" / "dog" / "big.png", size=(30, 20), color=(0, 200, 0))
    _png(root / "test" / "cat" / "gray.png", size=(10, 8), color=(77, 0, 0), mode="L")
    Image.new("RGBA", (5, 5), (0, 0, 255, 128)).save(root / "train" / "cat" / "alpha.png")
    Image.new("RGB", (10, 8), (1, 2, 3)).convert("P").save(root / "test" / "dog" / "palette.png")
    with pytest.warns(DataWarning, match=r"2 of 16 images differ in size from the most common, 8x10, and were resized"):
        data = load_image_folder(root, use_cache=False)
    assert data.image_shape == (3, 8, 10)
    assert data.test_images.shape[1:] == (3, 8, 10)
    big = data.train_ids.index("dog/big.png")
    assert data.train_images[big, :, 2:6, 2:8].float().mean(dim=(1, 2)).tolist() == [
        0.0,
        200.0,
        0.0,
    ]  # resized, not cropped
    untouched = data.train_ids.index("cat/0.png")
    assert data.train_images[untouched, :, 0, 0].tolist() == [0, 0, 5]  # images of the common size are not resampled
    assert data.test_images[3, :, 0, 0].tolist() == [77, 77, 77]  # test cat/gray.png (after cat/0-2): grey made RGB


def test_folders_without_a_test_split_hold_out_every_fifth_image_and_val_serves_as_test(tmp_path):
    import shutil

    from meanteacher.errors import DataWarning

    flat = tmp_path / "flat"
    for name in ("cat", "dog"):
        for i in range(10):
            _png(flat / name / f"{i}.png", color=(i, 0, 0))
    (flat / "README.txt").write_text("not an image")
    with pytest.warns(DataWarning, match=r"no test folder: every 5th image of each class \(4 images\) is held out"):
        data = load_image_folder(flat, use_cache=False)
    assert data.classes == ["cat", "dog"] and len(data.train_labels) == 16 and len(data.test_labels) == 4
    assert "cat/4.png" not in data.train_ids and "cat/9.png" not in data.train_ids and "cat/3.png" in data.train_ids
    assert sorted(data.test_images[:, 0, 0, 0].tolist()) == [4, 4, 9, 9]  # held out, never trained on

    root = _folder(tmp_path / "train-only", per_class=6)
    shutil.rmtree(root / "test")
    with pytest.warns(DataWarning, match="no test folder"):
        data = load_image_folder(root, use_cache=False)
    assert len(data.train_labels) == 10 and len(data.test_labels) == 2
    shutil.rmtree(root)
    _folder(root, per_class=3)
    shutil.rmtree(root / "test")
    _expect(root, "too few images to hold out")

    root = _folder(tmp_path / "train-val", per_class=5)
    (root / "test").rename(root / "val")
    data = load_image_folder(root, use_cache=False)
    assert len(data.train_labels) == 10 and len(data.test_labels) == 10


def test_empty_class_folder_named(tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "train" / "bird").mkdir()
    _png(root / "test" / "bird" / "0.png")
    with pytest.raises(DataError, match="bird: empty class folder"):
        load_dataset(root)


def test_builtin_digits():
    data = load_dataset("digits")
    assert data.train_images.shape == (1347, 1, 8, 8)
    assert data.test_images.shape == (450, 1, 8, 8)
    assert data.train_images.max().item() == 255
