"""Training images held on the device, their batch sampler, and the noised views of each minibatch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .augment import Augmenter, Normalizer
from .batch import NO_LABEL
from .sampler import IndexBatch, TwoStreamBatches
from .splits import LabelSplit
from .strong import StrongAugmenter


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

    def noised_views(
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
