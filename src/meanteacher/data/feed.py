"""Training data for the loop, behind one interface: held on the device, or streamed from image files.

A feed gives the noised views of a step's batch (``noised_views``), and the test and validation sets as
callables yielding ``(network input, labels)`` pairs for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import torch

from ..errors import MeanTeacherError
from .augment import Augmenter, Normalizer
from .batch import NO_LABEL
from .dataset import Dataset
from .sampler import IndexBatch, TwoStreamBatches, mixed_seed
from .splits import LabelSplit
from .streaming import FolderIndex, evaluation_loader, imagenet_normalizer, train_loader
from .strong import StrongAugmenter
from .views import device_data

EvaluationBatches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class TrainingFeed(Protocol):
    """What the training loop needs of its data."""

    normalizer: Normalizer
    extra: int
    """Extra unlabeled images stored after the training set (SVHN's ``extra``, the unlabeled pile)."""

    def noised_views(
        self, step: int, batch: IndexBatch, count: int, generator: torch.Generator
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``count`` independently noised views of this process's share of ``batch`` (on the device),
        their labels (``NO_LABEL`` where unlabeled) and their dataset indices (on the device where the feed
        already copied them there, so that the trainer does not copy them again)."""

    def test_batches(self) -> EvaluationBatches:
        """The test set, for evaluation."""

    def validation_batches(self) -> EvaluationBatches | None:
        """The held-out validation images, if any."""


def extra_subset(available: int, count: int, seed: int) -> torch.Tensor:
    """Indices of ``count`` extra images drawn at random (by ``seed``) from ``available``, in order."""
    if count > available:
        raise MeanTeacherError(f"extra_unlabeled={count} but the dataset has {available} extra images")
    generator = torch.Generator().manual_seed(mixed_seed(0, seed, 0, offset=4_242))
    return torch.randperm(available, generator=generator)[:count].sort().values


def _slices(images: torch.Tensor, labels: torch.Tensor, normalizer: Normalizer, batch_size: int) -> EvaluationBatches:
    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(images), batch_size):
            yield normalizer(images[start : start + batch_size]), labels[start : start + batch_size]

    return batches


class InMemoryFeed:
    """Training, test and validation images held on ``device`` in their stored form; the views are
    noised there, batch-wise (the student's strongly with ``strong``). ``extra_unlabeled`` extra images
    (-1: all) join the unlabeled pool, and after them the unlabeled pile ``with_pile``. The normalizer's
    statistics are those of the training images and the pile."""

    def __init__(
        self,
        dataset: Dataset,
        masked_labels: torch.Tensor,
        split: LabelSplit,
        normalize: str,
        augmenter: Augmenter,
        extra_unlabeled: int,
        seed: int,
        device: torch.device,
        eval_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        strong: StrongAugmenter | None = None,
        with_pile: bool = True,
    ) -> None:
        pile = dataset.unlabeled_images
        normalizer = Normalizer(normalize).fit(
            dataset.train_images if pile is None else torch.cat([dataset.train_images, pile])
        )
        extras = []
        if dataset.extra_images is not None and extra_unlabeled != 0:
            extra_images = dataset.extra_images
            if extra_unlabeled > 0:
                extra_images = extra_images[extra_subset(len(extra_images), extra_unlabeled, seed)]
            extras.append(extra_images)
        if pile is not None and with_pile:
            extras.append(pile)
        images, labels = dataset.train_images, masked_labels
        self.extra = sum(len(extra) for extra in extras)
        if extras:
            images = torch.cat([images, *extras])
            labels = torch.cat([labels, torch.full((self.extra,), NO_LABEL, dtype=labels.dtype)])
        self.train = device_data(images, labels, normalizer, augmenter, device, strong)
        self.normalizer = normalizer
        self.test_images = normalizer.prepare(dataset.test_images).to(device)
        self.test_labels = dataset.test_labels.to(device)
        self.validation_images = normalizer.prepare(dataset.train_images[split.validation]).to(device)
        self.validation_labels = dataset.train_labels[split.validation].to(device)
        self.eval_batch_size, self.rank, self.world_size = eval_batch_size, rank, world_size

    def noised_views(
        self, step: int, batch: IndexBatch, count: int, generator: torch.Generator
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        if self.world_size > 1:
            batch = batch.shard(self.rank, self.world_size)
        return self.train.noised_views(batch, count, generator)

    def test_batches(self) -> EvaluationBatches:
        return _slices(self.test_images, self.test_labels, self.normalizer, self.eval_batch_size)

    def validation_batches(self) -> EvaluationBatches | None:
        if not len(self.validation_labels):
            return None
        return _slices(self.validation_images, self.validation_labels, self.normalizer, self.eval_batch_size)


class StreamedFeed:
    """Images decoded and augmented per image in DataLoader workers (Appendix B.2.2), in pinned memory
    and copied to ``device`` without waiting; the loader starts at the first step asked for."""

    extra = 0

    def __init__(
        self,
        index: FolderIndex,
        masked_labels: torch.Tensor,
        sampler: TwoStreamBatches,
        seed: int,
        workers: int,
        device: torch.device,
        eval_batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.index, self.masked_labels, self.sampler, self.seed, self.workers = (
            index,
            masked_labels,
            sampler,
            seed,
            workers,
        )
        self.device, self.eval_batch_size, self.rank, self.world_size = device, eval_batch_size, rank, world_size
        self.normalizer = imagenet_normalizer()
        self._batches: Iterator | None = None

    def noised_views(
        self, step: int, batch: IndexBatch, count: int, generator: torch.Generator
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        if self._batches is None:
            self._batches = iter(
                train_loader(
                    self.index,
                    self.masked_labels,
                    self.sampler,
                    count,
                    self.seed,
                    step,
                    self.workers,
                    self.rank,
                    self.world_size,
                )
            )
        *views, labels, indices = next(self._batches)
        return [v.to(self.device, non_blocking=True) for v in views], labels.to(self.device, non_blocking=True), indices

    def test_batches(self) -> EvaluationBatches:
        loader = evaluation_loader(self.index, self.eval_batch_size, self.workers)
        return lambda: loader

    def validation_batches(self) -> EvaluationBatches | None:
        return None
