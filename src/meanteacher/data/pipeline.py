"""From a loaded dataset to device-resident training tensors and noised minibatches."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DataError
from .augment import Augmenter, Normalizer
from .batch import NO_LABEL
from .batches import IndexBatch, TwoStreamBatches
from .dataset import Dataset
from .splits import LabelSplit, balanced_split, read_label_file, split_from_labels
from .strong import StrongAugmenter


def make_split(
    dataset: Dataset, labels: int, seed: int, label_file: str = "", validation_per_class: int = 0
) -> tuple[LabelSplit, torch.Tensor]:
    """The label split and the training labels with ``NO_LABEL`` where a label is not kept.

    ``label_file`` (``image-id label`` lines) overrides balanced selection; ``labels=0`` keeps all. The
    validation hold-out is the same with or without a label file: the seed's balanced choice.
    """
    train_labels = dataset.train_labels
    if label_file:
        indices, file_labels = read_label_file(label_file, dataset.train_ids, dataset.classes)
        held_out = balanced_split(train_labels, None, dataset.num_classes, seed, validation_per_class).validation
        validation_named = held_out[torch.isin(held_out, indices)]
        if len(validation_named):
            raise DataError(
                f"{label_file}: {dataset.train_ids[int(validation_named[0])]} is held out for validation (seed {seed}, "
                f"{validation_per_class} a class): a label file names training images only"
            )
        named = sorted({dataset.classes[int(label)] for label in file_labels.unique()})
        if len(named) < 2:
            raise DataError(
                f"{label_file}: labels of {'only the class ' + repr(named[0]) if named else 'no class'}; "
                "a classifier needs labels of two classes or more"
            )
        split = split_from_labels(indices, len(train_labels), held_out)
        train_labels = train_labels.clone()
        train_labels[indices] = file_labels
    else:
        split = balanced_split(train_labels, labels or None, dataset.num_classes, seed, validation_per_class)
    masked = torch.full_like(train_labels, NO_LABEL)
    masked[split.labeled] = train_labels[split.labeled]
    return split, masked


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to ``device`` without making the host wait for a GPU (pinned, asynchronous)."""
    if device.type == "cuda" and not tensor.is_cuda:
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


@dataclass
class DeviceData:
    """Training images in their stored form (uint8, or whitened floats) and labels, on one device.

    ``images`` may have extra unlabeled images appended after the training set; their labels are
    ``NO_LABEL``. With ``strong``, the first view (the student's) is moved as the others are, in pixels,
    then strongly augmented before it is normalized and noised; the other views stay weak.
    """

    images: torch.Tensor
    labels: torch.Tensor
    normalizer: Normalizer
    augmenter: Augmenter
    strong: StrongAugmenter | None = None

    def views(
        self, batch: IndexBatch, count: int, generator: torch.Generator
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``count`` independently noised views of the batch's images, its labels, and its indices on the device."""
        device = self.images.device
        indices = to_device(batch.indices, device)
        stored = self.images[indices]
        labels = torch.where(to_device(batch.labeled, device), self.labels[indices], NO_LABEL)
        weak = count - (self.strong is not None)
        base = self.normalizer(stored) if weak else None
        views = [self.augmenter(base, generator) for _ in range(weak)]
        if self.strong is not None:
            pixels = self.strong(self.augmenter.move(stored.float() / 255.0, generator), generator)
            views.insert(0, self.augmenter.add_noise(self.normalizer.from_unit(pixels), generator))
        return views, labels, indices


def device_data(
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    augmenter: Augmenter,
    device: torch.device,
    strong: StrongAugmenter | None = None,
) -> DeviceData:
    """Move stored images and labels to ``device`` once, for the whole run."""
    stored = normalizer.prepare(images)
    return DeviceData(stored.to(device), labels.to(device), normalizer, augmenter, strong)


def batches_for(
    split: LabelSplit,
    extra: int,
    num_train: int,
    batch_size: int,
    labeled_per_batch: int,
    seed: int,
    labeled_only: bool,
) -> TwoStreamBatches:
    """The batch sampler of a run: labeled-only for supervised training, else two streams.

    ``extra`` images stored after the ``num_train`` training images join the unlabeled pool.
    """
    unlabeled = torch.cat([split.unlabeled, torch.arange(num_train, num_train + extra)])
    if labeled_only:
        return TwoStreamBatches(split.labeled, unlabeled[:0], batch_size, batch_size, seed, num_train + extra)
    per_batch = None if labeled_per_batch < 0 else labeled_per_batch
    return TwoStreamBatches(split.labeled, unlabeled, batch_size, per_batch, seed, num_train + extra)
