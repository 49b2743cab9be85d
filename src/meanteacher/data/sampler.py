"""The sampler: index batches, a labeled and an unlabeled stream sharing each minibatch, deterministic by seed.

The batch of step ``s`` is a pure function of ``(seed, s)``: a resumed run draws exactly the batches
an uninterrupted one would, and each distributed rank can take its own shard of every batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import DataWarning


def mixed_seed(seed: int, stream: int, index: int, offset: int = 0) -> int:
    """The package's one seed mixer: a seed for item ``index`` of random stream ``stream`` of a run
    seeded ``seed`` (passes over a data stream, training steps of a process, subsets of a set)."""
    return (seed * 1_000_003 + stream * 7_919 + index * 104_729 + offset) % (2**63 - 1)


class Stream:
    """An endless sequence of reshuffled passes over ``indices``."""

    def __init__(self, indices: torch.Tensor, seed: int, stream: int) -> None:
        self.indices = indices
        self.seed = seed
        self.stream = stream
        self._cache: dict[int, torch.Tensor] = {}

    def _pass(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            generator = torch.Generator().manual_seed(mixed_seed(self.seed, self.stream, index))
            self._cache[index] = self.indices[torch.randperm(len(self.indices), generator=generator)]
        return self._cache[index]

    def take(self, start: int, count: int) -> torch.Tensor:
        """Items ``start .. start + count - 1`` of the endless sequence."""
        size = len(self.indices)
        parts = []
        while count > 0:
            index, offset = divmod(start, size)
            chunk = self._pass(index)[offset : offset + count]
            parts.append(chunk)
            start += len(chunk)
            count -= len(chunk)
        return torch.cat(parts) if parts else self.indices[:0]


@dataclass
class IndexBatch:
    """Training-set indices of one minibatch; ``labeled`` marks the rows whose label is used."""

    indices: torch.Tensor
    labeled: torch.Tensor
    epoch_end: bool

    def shard(self, rank: int, size: int) -> IndexBatch:
        """This process's share: every ``size``-th labeled and every ``size``-th unlabeled row from
        ``rank``, so each shard keeps the batch's labeled/unlabeled composition."""
        labeled_rows = torch.nonzero(self.labeled).flatten()[rank::size]
        unlabeled_rows = torch.nonzero(~self.labeled).flatten()[rank::size]
        rows = torch.cat([labeled_rows, unlabeled_rows])
        return IndexBatch(self.indices[rows], self.labeled[rows], self.epoch_end)


class TwoStreamBatches:
    """Minibatches of ``labeled_per_batch`` labeled and ``batch_size - labeled_per_batch`` unlabeled
    examples; the labeled stream cycles through reshuffled passes of the labeled set.

    ``labeled_per_batch=None`` is the "varying" mode: every example is drawn from the unlabeled pool
    and keeps its label if it has one. ``labeled_per_batch == batch_size`` gives labeled-only batches
    (supervised-only training). An epoch is one pass over the unlabeled stream (over the labeled
    stream when batches are labeled-only).
    """

    def __init__(
        self,
        labeled: torch.Tensor,
        unlabeled: torch.Tensor,
        batch_size: int,
        labeled_per_batch: int | None,
        seed: int,
        num_examples: int,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if labeled_per_batch is not None and not 0 <= labeled_per_batch <= batch_size:
            raise ValueError(f"labeled_per_batch must be in [0, batch_size={batch_size}], got {labeled_per_batch}")
        if labeled_per_batch and len(labeled) == 0:
            raise ValueError("labeled_per_batch > 0 but there are no labeled examples")
        if (labeled_per_batch is None or labeled_per_batch < batch_size) and len(unlabeled) == 0:
            raise ValueError("there are no unlabeled examples to fill the batches")
        self.batch_size = batch_size
        self.labeled_per_batch = labeled_per_batch
        self.is_labeled = torch.zeros(num_examples, dtype=torch.bool)
        self.is_labeled[labeled] = True
        self.labeled_stream = Stream(labeled, seed, 1)
        self.unlabeled_stream = Stream(unlabeled, seed, 2)
        stream, per_batch = self._main
        if stream is self.unlabeled_stream and per_batch > len(unlabeled):
            warnings.warn(
                f"each batch draws {per_batch} of its images from only {len(unlabeled)} training images, so some appear "
                f"twice in a batch; a smaller --batch-size avoids it",
                DataWarning,
                stacklevel=2,
            )

    @property
    def _main(self) -> tuple[Stream, int]:
        if self.labeled_per_batch is None:
            return self.unlabeled_stream, self.batch_size
        unlabeled = self.batch_size - self.labeled_per_batch
        return (self.unlabeled_stream, unlabeled) if unlabeled else (self.labeled_stream, self.batch_size)

    @property
    def steps_per_epoch(self) -> float:
        stream, per_batch = self._main
        return len(stream.indices) / per_batch

    def epoch_of(self, step: int) -> int:
        """The epoch that step ``step`` (0-based) belongs to."""
        stream, per_batch = self._main
        return step * per_batch // len(stream.indices)

    def batch(self, step: int) -> IndexBatch:
        """The minibatch of step ``step`` (0-based)."""
        stream, per_batch = self._main
        epoch_end = (step + 1) * per_batch // len(stream.indices) > step * per_batch // len(stream.indices)
        if self.labeled_per_batch is None:
            indices = self.unlabeled_stream.take(step * self.batch_size, self.batch_size)
            return IndexBatch(indices, self.is_labeled[indices], epoch_end)
        k = self.labeled_per_batch
        labeled = self.labeled_stream.take(step * k, k)
        unlabeled = self.unlabeled_stream.take(step * (self.batch_size - k), self.batch_size - k)
        mask = torch.cat([torch.ones(k, dtype=torch.bool), torch.zeros(self.batch_size - k, dtype=torch.bool)])
        return IndexBatch(torch.cat([labeled, unlabeled]), mask, epoch_end)

    def __iter__(self) -> Iterator[IndexBatch]:
        return self.iterate(0)

    def iterate(self, start: int) -> Iterator[IndexBatch]:
        """Endless batches from step ``start`` on."""
        step = start
        while True:
            yield self.batch(step)
            step += 1
