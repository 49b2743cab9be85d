"""Error rate and classification cost of networks on a test set: shared by training and inference."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data.augment import Normalizer
from ..losses import classification_cost
from ..models import split_heads

if TYPE_CHECKING:
    from ..data.feed import TrainingFeed


def autocast(device: torch.device, precision: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast or nothing; ``cache=False`` under CUDA-graph capture, which autocast's weight cache breaks."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_batches(
    models: dict[str, nn.Module],
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    precision: str = "fp32",
    channels_last: bool = False,
    num_classes: int = 0,
) -> dict[str, Any]:
    """Error rate and mean classification cost of each model (in eval mode) over ``batches()``,
    an iterable of (network input, labels) pairs; with ``num_classes``, also each model's confusion
    matrix (``NAME_confusion``: rows the true classes, columns the predicted ones, counts as lists)."""
    results: dict[str, Any] = {}
    device = next(next(iter(models.values())).parameters()).device
    for name, model in models.items():
        was_training = model.training
        model.eval()
        wrong = torch.zeros((), dtype=torch.long, device=device)  # summed on the device: one host read per model
        cost = torch.zeros((), dtype=torch.float64, device=device)
        confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
        count = 0
        for x, y in batches():
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits, _ = split_heads(model(x))
            predicted = logits.argmax(1)
            wrong += (predicted != y).sum()
            cost += classification_cost(logits.float(), y, "batch").double() * len(y)
            if num_classes:
                confusion.scatter_add_(0, y * num_classes + predicted, torch.ones_like(y))
            count += len(y)
        model.train(was_training)
        results[f"{name}_error"] = int(wrong) / max(count, 1)
        results[f"{name}_class_cost"] = float(cost) / max(count, 1)
        if num_classes:
            results[f"{name}_confusion"] = confusion.view(num_classes, num_classes).tolist()
    return results


def evaluate_feed(
    models: dict[str, nn.Module],
    feed: TrainingFeed,
    precision: str = "fp32",
    channels_last: bool = False,
    num_classes: int = 0,
) -> dict[str, Any]:
    """``evaluate_batches`` on a run's test set and, where it holds one, its validation split (its results
    named ``validation_...``, without confusion matrices)."""
    results = evaluate_batches(models, feed.test_batches(), precision, channels_last, num_classes)
    validation = feed.validation_batches()
    if validation is not None:
        on_validation = evaluate_batches(models, validation, precision, channels_last)
        results.update({f"validation_{name}": value for name, value in on_validation.items()})
    return results


def evaluate(
    models: dict[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    batch_size: int = 500,
    precision: str = "fp32",
    channels_last: bool = False,
    num_classes: int = 0,
) -> dict[str, Any]:
    """Error rate and mean classification cost of each model on stored (see ``Normalizer.prepare``) ``images``
    (and confusion matrices with ``num_classes``, see ``evaluate_batches``)."""

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(images), batch_size):
            yield normalizer(images[start : start + batch_size]), labels[start : start + batch_size]

    return evaluate_batches(models, batches, precision, channels_last, num_classes)
