"""A straightforward re-creation of the reference code's Mean Teacher step, for speed comparison.

What it does the reference way: every image is augmented on its own (pad, random crop, random flip)
inside DataLoader worker processes, the student and the teacher are called separately, the EMA is a
Python loop of ``mul_().add_()`` per parameter, everything in fp32. Model, batch and costs are the
same as ours, so the accuracy settings are equal.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from meanteacher.losses import NO_LABEL, classification_cost, softmax_mse
from meanteacher.models import ConvNet13

from .ema import reference_update


class PerImageTwoViews(Dataset):
    """Returns two independently augmented float views and the label of one image."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def _view(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        padded = np.pad(image, ((0, 0), (2, 2), (2, 2)), mode="reflect")
        dy, dx = rng.integers(0, 5, size=2)
        crop = padded[:, dy : dy + image.shape[1], dx : dx + image.shape[2]]
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        return torch.from_numpy(((crop / 255.0 - self.mean) / self.std).astype(np.float32))

    def __getitem__(self, index: int):
        rng = np.random.default_rng()
        image = self.images[index]
        return self._view(image, rng), self._view(image, rng), int(self.labels[index])


class ReferenceRecipe:
    """Mean Teacher steps the reference way on ``dataset`` (4000 labels, varying batches)."""

    def __init__(self, dataset, width: float, batch_size: int, workers: int = 2) -> None:
        images = dataset.train_images.numpy()
        labels = np.full(len(images), NO_LABEL)
        labeled = np.random.default_rng(0).choice(len(images), 4000, replace=False)
        labels[labeled] = dataset.train_labels.numpy()[labeled]
        mean = images.mean(axis=(0, 2, 3), keepdims=True)[0] / 255.0
        std = images.std(axis=(0, 2, 3), keepdims=True)[0] / 255.0
        self.loader = DataLoader(
            PerImageTwoViews(images, labels, mean, std),
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            drop_last=True,
            persistent_workers=workers > 0,
        )
        self.iterator = iter(self.loader)
        self.student = ConvNet13(dataset.num_classes, width=width)
        self.teacher = ConvNet13(dataset.num_classes, width=width)
        self.teacher.load_state_dict(self.student.state_dict())
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=0.003)
        self.steps = 0

    def step(self) -> None:
        try:
            student_view, teacher_view, labels = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.loader)
            student_view, teacher_view, labels = next(self.iterator)
        logits = self.student(student_view)
        with torch.no_grad():
            teacher_logits = self.teacher(teacher_view)
        loss = classification_cost(logits, labels) + 1.0 * softmax_mse(logits, teacher_logits)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        reference_update(self.teacher, self.student, min(1 - 1 / (self.steps + 1), 0.999))

    def time_steps(self, count: int) -> float:
        """Median seconds per step over ``count`` steps (one untimed warm-up step first)."""
        self.step()
        times = []
        for _ in range(count):
            start = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def close(self) -> None:
        del self.iterator
        del self.loader
