import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from meanteacher.data.augment import Augmenter, Normalizer, gaussian_noise, horizontal_flip, translate
from meanteacher.data.sampler import TwoStreamBatches
from meanteacher.data.splits import balanced_split, read_label_file, write_label_file
from meanteacher.data.views import to_device
from meanteacher.errors import DataError

LABELS = torch.arange(100) % 4  # 25 per class


def test_balanced_split_per_class_and_seeded():
    split = balanced_split(LABELS, 20, 4, seed=0)
    assert torch.bincount(LABELS[split.labeled]).tolist() == [5, 5, 5, 5]
    assert len(split.unlabeled) == 100  # labeled ones stay in the unlabeled pool
    again = balanced_split(LABELS, 20, 4, seed=0)
    other = balanced_split(LABELS, 20, 4, seed=1)
    assert torch.equal(split.labeled, again.labeled)
    assert not torch.equal(split.labeled, other.labeled)
    assert len(balanced_split(LABELS, None, 4, 0).labeled) == 100


def test_validation_holdout_excluded_from_training():
    split = balanced_split(LABELS, 8, 4, seed=0, validation_per_class=3)
    assert torch.bincount(LABELS[split.validation]).tolist() == [3, 3, 3, 3]
    held = set(split.validation.tolist())
    assert held.isdisjoint(split.labeled.tolist())
    assert held.isdisjoint(split.unlabeled.tolist())
    assert len(split.unlabeled) == 88


@pytest.mark.parametrize(
    "count, match",
    [
        (101, r"more labels requested \(101\) than training images \(100\)"),
        (3, r"fewer labels \(3\) than classes \(4\)"),
        (0, "positive"),
    ],
)
def test_bad_label_counts(count, match):
    with pytest.raises(DataError, match=match):
        balanced_split(LABELS, count, 4, 0)
    with pytest.raises(DataError, match=r"more labels requested \(80\) than training images \(76\)"):
        balanced_split(LABELS, 80, 4, 0, validation_per_class=6)


def test_any_label_count_is_spread_as_evenly_as_the_classes_allow():
    from meanteacher.data.splits import labels_per_class

    assert labels_per_class(10, [25, 25, 25, 25]) == [3, 3, 2, 2]
    assert labels_per_class(30, [2, 25, 25, 25]) == [2, 10, 9, 9]  # a small class gives what it lacks to the others
    assert labels_per_class(12, [3, 3, 3, 3]) == [3, 3, 3, 3]
    imbalanced = torch.tensor([0] * 2 + [1] * 40 + [2] * 40 + [3] * 18)
    split = balanced_split(imbalanced, 30, 4, seed=1)
    assert torch.bincount(imbalanced[split.labeled], minlength=4).tolist() == [2, 10, 9, 9]
    assert len(set(split.labeled.tolist())) == 30


def test_label_file_round_trip_and_errors(tmp_path):
    ids = [f"img{i}.png" for i in range(6)]
    classes = ["cat", "dog"]
    path = tmp_path / "labels.txt"
    write_label_file(path, ids, classes, torch.tensor([1, 4]), torch.tensor([1, 0]))
    assert path.read_text() == "img1.png dog\nimg4.png cat\n"
    indices, labels = read_label_file(path, ids, classes)
    assert indices.tolist() == [1, 4] and labels.tolist() == [1, 0]
    path.write_text("img1.png dog\nimg9.png cat\n")
    with pytest.raises(DataError, match=r"labels.txt:2: unknown image 'img9.png'"):
        read_label_file(path, ids, classes)
    path.write_text("img1.png horse\n")
    with pytest.raises(DataError, match=r"labels.txt:1: unknown class 'horse'"):
        read_label_file(path, ids, classes)
    path.write_text("img1.png\n")
    with pytest.raises(DataError, match="expected 'image-id label'"):
        read_label_file(path, ids, classes)


def test_two_stream_batches_composition_and_determinism():
    labeled = torch.tensor([0, 5, 10])
    sampler = TwoStreamBatches(labeled, torch.arange(40), batch_size=10, labeled_per_batch=2, seed=3, num_examples=40)
    batch = sampler.batch(0)
    assert batch.indices.shape == (10,)
    assert batch.labeled.tolist() == [True, True] + [False] * 8
    assert set(batch.indices[:2].tolist()) <= {0, 5, 10}
    # the labeled stream cycles through reshuffled passes: 3 steps x 2 = two full passes
    seen = torch.cat([sampler.batch(s).indices[:2] for s in range(3)]).tolist()
    assert sorted(seen) == [0, 0, 5, 5, 10, 10]
    # one epoch is one pass over the unlabeled stream: 40 / 8 = 5 steps
    unlabeled = torch.cat([sampler.batch(s).indices[2:] for s in range(5)])
    assert sorted(unlabeled.tolist()) == list(range(40))
    assert [sampler.batch(s).epoch_end for s in range(6)] == [False] * 4 + [True, False]
    again = TwoStreamBatches(labeled, torch.arange(40), 10, 2, seed=3, num_examples=40)
    assert all(torch.equal(sampler.batch(s).indices, again.batch(s).indices) for s in (0, 7, 100))
    other = TwoStreamBatches(labeled, torch.arange(40), 10, 2, seed=4, num_examples=40)
    assert not torch.equal(sampler.batch(1).indices, other.batch(1).indices)
    iterator = iter(sampler)
    assert torch.equal(next(iterator).indices, sampler.batch(0).indices)


def test_varying_and_labeled_only_modes():
    labeled = torch.arange(0, 40, 4)
    varying = TwoStreamBatches(labeled, torch.arange(40), 20, None, seed=0, num_examples=40)
    batch = varying.batch(0)
    assert torch.equal(batch.labeled, batch.indices % 4 == 0)
    supervised = TwoStreamBatches(labeled, torch.arange(0), 5, 5, seed=0, num_examples=40)
    assert supervised.batch(0).labeled.all()
    assert supervised.steps_per_epoch == 2
    with pytest.raises(ValueError, match="labeled_per_batch"):
        TwoStreamBatches(labeled, torch.arange(40), 5, 6, 0, 40)


def test_a_training_set_smaller_than_the_batch_is_said_once_not_silently_repeated():
    import warnings

    from meanteacher.errors import DataWarning

    labeled = torch.arange(0, 12, 4)
    with pytest.warns(DataWarning, match="each batch draws 8 of its images from only 6 training images"):
        small = TwoStreamBatches(labeled, torch.arange(6), 10, 2, seed=0, num_examples=12)
    assert len(small.batch(0).indices) == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TwoStreamBatches(labeled, torch.arange(8), 10, 2, seed=0, num_examples=12)  # 8 unlabeled rows: each image once
        TwoStreamBatches(
            labeled, torch.arange(0), 10, 10, seed=0, num_examples=12
        )  # labeled-only: labels repeat by design


def test_translate_shifts_content_within_bounds():
    image = torch.zeros(64, 1, 9, 9)
    image[:, :, 4, 4] = 1.0
    shifted = translate(image, 2, fill="zero", generator=torch.Generator().manual_seed(0))
    positions = shifted.flatten(1).argmax(1)
    rows, cols = positions // 9, positions % 9
    assert shifted.sum().item() == 64  # nothing lost
    assert rows.min() >= 2 and rows.max() <= 6 and cols.min() >= 2 and cols.max() <= 6
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # each image its own shift
    reflected = translate(torch.arange(25.0).view(1, 1, 5, 5).repeat(16, 1, 1, 1), 1)
    assert set(reflected.unique().tolist()) <= set(range(25))


def test_flip_noise_and_independent_draws():
    images = torch.arange(32.0).view(2, 1, 4, 4).repeat(50, 1, 1, 1)
    flipped = horizontal_flip(images, torch.Generator().manual_seed(0))
    changed = (flipped != images).flatten(1).any(1).float().mean().item()
    assert 0.3 < changed < 0.7
    noisy = gaussian_noise(torch.zeros(10_000), 0.15)
    assert noisy.std().item() == pytest.approx(0.15, rel=0.05)
    augment = Augmenter(max_shift=2, flip=True)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 16, 16)
    assert not torch.equal(augment(x, generator), augment(x, generator))


def test_normalizers():
    images = torch.randint(0, 256, (200, 3, 4, 4), dtype=torch.uint8)
    standard = Normalizer("standardize").fit(images)
    out = standard(standard.prepare(images))
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    zca = Normalizer("zca", epsilon=1e-6, gcn=False).fit(images)
    white = zca(zca.prepare(images)).flatten(1).double()
    covariance = white.T @ white / len(white)
    assert torch.allclose(covariance, torch.eye(48, dtype=torch.float64), atol=0.05)
    restored = Normalizer.from_state_dict(standard.state_dict())
    assert torch.equal(restored(images), out)
    with pytest.raises(ValueError, match="normalization"):
        Normalizer("whiten")


class CrossDeviceCopies(TorchDispatchMode):
    """Counts copies of a tensor to another device (on a GPU: a host-to-device copy per call)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and "device" in kwargs and kwargs["device"] != args[0].device:
            self.count += 1
        return func(*args, **kwargs)


def test_normalizer_statistics_are_copied_to_the_device_once():
    # the meta device stands in for a GPU: a batch there needs the CPU-fitted statistics there too
    standard = Normalizer("standardize").fit(torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8))
    batch = torch.empty(8, 3, 4, 4, dtype=torch.uint8, device="meta")
    with CrossDeviceCopies() as first:
        standard(batch)
    with CrossDeviceCopies() as later:
        for _ in range(3):
            standard(batch)
    assert first.count == 2  # mean and std, once
    assert later.count == 0
    assert standard.state_dict()["stats"]["mean"].device.type == "cpu"  # checkpoints keep the CPU copy
    standard.stats = {"mean": torch.zeros(3), "std": torch.ones(3)}  # new statistics reach the device too
    with CrossDeviceCopies() as refit:
        standard(batch)
    assert refit.count == 2


def test_augmenting_a_batch_is_fast():
    data = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8)
    normalize = Normalizer().fit(data)
    augment = Augmenter(2, True)
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, 5000, (100,))
    times = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second thread spin-waiting for a busy core would count as this process's time
    try:
        for _ in range(30):  # CPU time of this process, not wall time: other processes sharing the cores don't count
            start = time.process_time()
            augment(normalize(data[index]), generator)
            times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 0.005


def test_make_split_from_a_label_file_with_or_without_a_validation_hold_out(tmp_path):
    from meanteacher.data.formats.digits import load_digits
    from meanteacher.data.splits import make_split
    from meanteacher.losses import NO_LABEL

    data = load_digits()
    path = tmp_path / "mine.txt"
    path.write_text("3 7\n10 2\n")
    split, masked = make_split(data, 0, seed=0, label_file=str(path))
    assert split.labeled.tolist() == [3, 10]
    assert masked[3].item() == 7 and masked[10].item() == 2
    assert (masked != NO_LABEL).sum().item() == 2
    assert len(split.unlabeled) == len(data.train_labels)
    balanced, _ = make_split(data, 100, seed=4, validation_per_class=5)
    with_file, _ = make_split(data, 0, seed=4, label_file=str(path), validation_per_class=5)
    assert torch.equal(with_file.validation, balanced.validation) and len(with_file.validation) == 50
    assert (
        len(with_file.unlabeled) == len(data.train_labels) - 50
        and not torch.isin(with_file.validation, with_file.unlabeled).any()
    )
    held = int(balanced.validation[0])
    path.write_text(f"3 7\n{held} {int(data.train_labels[held])}\n")
    with pytest.raises(DataError, match=f"{held} is held out for validation"):
        make_split(data, 0, 4, label_file=str(path), validation_per_class=5)


def test_the_feed_gives_the_indices_on_its_device_so_the_trainer_copies_them_once():
    # the meta device stands in for a GPU: the indices the gather copied there come back, not the host's
    from meanteacher.data.views import device_data

    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    data = device_data(
        images, torch.arange(40) % 4, Normalizer().fit(images), Augmenter(1, False), torch.device("meta")
    )
    batch = TwoStreamBatches(torch.arange(0, 40, 4), torch.arange(40), 10, 2, seed=0, num_examples=40).batch(0)
    data.noised_views(batch, 2, None)  # the normalizer's statistics go to the device on the first batch
    with CrossDeviceCopies() as copies:
        views, labels, indices = data.noised_views(batch, 2, None)
        again = to_device(indices, torch.device("meta"))  # what the trainer does with them
    assert indices.device.type == "meta" and again is indices
    assert copies.count == 2  # the indices and the labeled flags, once each
