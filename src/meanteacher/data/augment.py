"""Batched noise and normalization on whatever device the images are on.

Every random function takes an optional ``torch.Generator`` on the images' device; two calls draw
independently, which is how the student and the teacher get different noise of the same examples.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _randint(high: int, size: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, high, (size,), device=device, generator=generator)


def translate(
    images: torch.Tensor, max_shift: int, fill: str = "reflect", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by its own random offset of up to ``max_shift`` pixels in x and y.

    ``fill="reflect"`` mirrors the border into the uncovered area, ``"zero"`` fills it with zeros.
    """
    if max_shift <= 0:
        return images
    if fill not in ("reflect", "zero"):
        raise ValueError(f"fill must be 'reflect' or 'zero', got {fill!r}")
    n, c, h, w = images.shape
    k = max_shift
    mode = "reflect" if fill == "reflect" and k < min(h, w) else "constant"
    padded = F.pad(images if images.is_floating_point() else images.float(), (k, k, k, k), mode=mode)
    padded = padded.to(images.dtype)
    device = images.device
    dy = _randint(2 * k + 1, n, device, generator)
    dx = _randint(2 * k + 1, n, device, generator)
    rows = (torch.arange(h, device=device) + dy[:, None])[:, None, :, None].expand(n, c, h, w + 2 * k)
    shifted_rows = padded.gather(2, rows)
    cols = (torch.arange(w, device=device) + dx[:, None])[:, None, None, :].expand(n, c, h, w)
    return shifted_rows.gather(3, cols)


def horizontal_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def gaussian_noise(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add ``N(0, std**2)`` noise to every pixel."""
    if std <= 0:
        return images
    noise = torch.randn(images.shape, device=images.device, dtype=images.dtype, generator=generator)
    return images + std * noise


class Augmenter:
    """Random translation, optional horizontal flip and optional additive Gaussian noise, batched."""

    def __init__(self, max_shift: int = 2, flip: bool = True, noise_std: float = 0.0, fill: str = "reflect") -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift
        self.flip = flip
        self.noise_std = noise_std
        self.fill = fill

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.add_noise(self.move(images, generator), generator)

    def move(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The geometric part: translation, then the flip."""
        images = translate(images, self.max_shift, self.fill, generator)
        return horizontal_flip(images, generator) if self.flip else images

    def add_noise(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The additive Gaussian noise (on network inputs)."""
        return gaussian_noise(images, self.noise_std, generator)


class Normalizer:
    """Turns uint8 images into network inputs, with statistics fitted on training images.

    ``"standardize"``: per-channel zero mean and unit variance, applied per batch on uint8 storage.
    ``"zca"``: ZCA whitening (after global contrast normalization when ``gcn``), applied once by
    ``prepare`` to the whole stored set, since a whitening matrix per batch would cost more than the step.
    ``"per_image"``: each image to zero mean and unit variance over its pixels and channels (the
    reference TensorFlow code's ``normalize_input``, used for SVHN).
    ``"none"``: pixels scaled to [0, 1].
    """

    MODES = ("standardize", "per_image", "zca", "none")

    def __init__(self, mode: str = "standardize", epsilon: float = 1e-2, gcn: bool = True) -> None:
        if mode not in self.MODES:
            raise ValueError(f"normalization must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.epsilon = epsilon
        self.gcn = gcn
        self.stats = {}

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """The fitted statistics, on the CPU (what checkpoints and exports hold)."""
        return self._stats

    @stats.setter
    def stats(self, value: dict[str, torch.Tensor]) -> None:
        self._stats = value
        self._stats_by_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    @staticmethod
    def _global_contrast(flat: torch.Tensor) -> torch.Tensor:
        centred = flat - flat.mean(dim=1, keepdim=True)
        return centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-8) * 55.0

    def fit(self, images: torch.Tensor, chunk: int = 5000) -> Normalizer:
        """Fit statistics on uint8 training images ``N x C x H x W``."""
        x = images.double() / 255.0
        if self.mode == "standardize":
            self.stats = {"mean": x.mean(dim=(0, 2, 3)).float(), "std": x.std(dim=(0, 2, 3)).clamp_min(1e-8).float()}
        elif self.mode == "zca":
            flat = x.flatten(1)
            if self.gcn:
                flat = self._global_contrast(flat)
            mean = flat.mean(dim=0)
            covariance = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64)
            for start in range(0, len(flat), chunk):
                part = flat[start : start + chunk] - mean
                covariance += part.T @ part
            covariance /= len(flat)
            values, vectors = torch.linalg.eigh(covariance)
            whitening = vectors @ torch.diag(1.0 / torch.sqrt(values.clamp_min(0) + self.epsilon)) @ vectors.T
            self.stats = {"mean": mean.float(), "whitening": whitening.float()}
        return self

    def _stats_on(self, device: torch.device) -> dict[str, torch.Tensor]:
        """The fitted statistics on ``device``, copied there on first use only: a GPU step makes no
        host-to-device copy (which would also break CUDA-graph capture)."""
        if device not in self._stats_by_device:
            self._stats_by_device[device] = {name: value.to(device) for name, value in self.stats.items()}
        return self._stats_by_device[device]

    def prepare(self, images: torch.Tensor, chunk: int = 5000) -> torch.Tensor:
        """The stored form of uint8 ``images``: themselves, or whitened floats for ``"zca"``."""
        if self.mode != "zca":
            return images
        whitening = self.stats["whitening"].to(images.device)
        mean = self.stats["mean"].to(images.device)
        parts = []
        for start in range(0, len(images), chunk):
            flat = images[start : start + chunk].flatten(1).float() / 255.0
            if self.gcn:
                flat = self._global_contrast(flat)
            parts.append(((flat - mean) @ whitening).view(-1, *images.shape[1:]))
        return torch.cat(parts) if parts else images.float()

    def __call__(self, stored: torch.Tensor) -> torch.Tensor:
        """Network inputs from a batch of stored images (see ``prepare``)."""
        if self.mode == "zca":
            return stored.float()
        return self.from_unit(stored.float() / 255.0)

    def from_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Network inputs from float images in [0, 1] (pixels brought to [0, 1], as strong augmentation
        gives them); not for ``"zca"``, whose stored images are already whitened."""
        if self.mode == "zca":
            raise ValueError("ZCA-whitened images are stored whitened: there are no [0, 1] pixels to normalize")
        if self.mode == "standardize":
            stats, view = self._stats_on(x.device), (1, -1, 1, 1)
            x = (x - stats["mean"].view(view)) / stats["std"].view(view)
        elif self.mode == "per_image":
            dims = tuple(range(1, x.dim()))
            x = (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True, unbiased=False).clamp_min(1e-6)
        return x

    def state_dict(self) -> dict[str, Any]:
        """Mode, settings and fitted statistics (for checkpoints and prediction)."""
        return {"mode": self.mode, "epsilon": self.epsilon, "gcn": self.gcn, "stats": self.stats}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Normalizer:
        """A normalizer with the statistics ``state_dict`` returned."""
        normalizer = cls(state["mode"], state["epsilon"], state["gcn"])
        normalizer.stats = dict(state["stats"])
        return normalizer
