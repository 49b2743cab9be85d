"""Using a finished (or running) run: evaluate its networks, predict classes of new images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import Config
from .data.augment import Normalizer
from .data.sources import IMAGE_SUFFIXES, load_dataset
from .data.streaming import eval_view, evaluation_loader, index_image_folder, open_rgb
from .errors import DataError, MeanTeacherError
from .models import split_heads
from .train import build_model, check_architecture, evaluate, evaluate_batches, load_checkpoint, resume_config


@dataclass
class LoadedRun:
    """A run's configuration, classes, normalizer and networks (``student`` and ``ema``), on CPU."""

    config: Config
    classes: list[str]
    image_shape: tuple[int, int, int]
    normalizer: Normalizer
    models: dict[str, nn.Module]

    @property
    def predictor(self) -> nn.Module:
        """The network used for predictions: the EMA (Mean Teacher's teacher), usually the better one."""
        return self.models["ema"]

    def evaluate(self, data: str | None = None, precision: str | None = None) -> dict[str, float]:
        """Error and classification cost of each network on the test split of the run's (or ``data``'s)
        dataset, in the run's precision (as during training) unless ``precision`` says otherwise."""
        precision = precision or self.config.precision
        if self.config.streaming:
            index = index_image_folder(data or self.config.dataset, self.config.image_size)
            loader = evaluation_loader(index, self.config.eval_batch_size, self.config.workers)
            return evaluate_batches(self.models, lambda: loader, precision)
        dataset = load_dataset(data or self.config.dataset, None if data else (self.config.test_data or None))
        if dataset.image_shape != self.image_shape or dataset.classes != self.classes:
            raise MeanTeacherError(
                f"{data or self.config.dataset}: images {dataset.image_shape} / {len(dataset.classes)} classes do not "
                f"match the run's {self.image_shape} / {len(self.classes)} classes"
            )
        stored = self.normalizer.prepare(dataset.test_images)
        return evaluate(self.models, stored, dataset.test_labels, self.normalizer, self.config.eval_batch_size, precision)

    @torch.no_grad()
    def _classify(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class indices and softmax confidences of the predictor for network inputs."""
        model = self.predictor.eval()
        labels, confidences = [], []
        for start in range(0, len(inputs), self.config.eval_batch_size):
            logits, _ = split_heads(model(inputs[start : start + self.config.eval_batch_size]))
            confidence, label = logits.float().softmax(1).max(1)
            labels.append(label)
            confidences.append(confidence)
        return torch.cat(labels), torch.cat(confidences)

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class indices and softmax confidences for uint8 images ``N x C x H x W`` of the run's shape."""
        return self._classify(self.normalizer(self.normalizer.prepare(images)))

    def predict_paths(self, paths: list[str]) -> list[tuple[str, str, float]]:
        """``(path, class name, confidence)`` for each image file, searching folders recursively.

        Images are converted and resized to the run's shape; for streamed runs they get the
        evaluation view (resize and centre crop) instead.
        """
        files = image_files(paths)
        if self.config.streaming:
            labels, confidences = self._classify(torch.stack([eval_view(open_rgb(f), self.image_shape[1]) for f in files]))
        else:
            labels, confidences = self.predict(torch.stack([read_image(file, self.image_shape) for file in files]))
        return [(str(f), self.classes[int(l)], float(c)) for f, l, c in zip(files, labels, confidences)]


def image_files(paths: list[str]) -> list[Path]:
    """The image files named, and those inside named folders, in a stable order."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(f"no images found in {', '.join(paths)}")
    return files


def read_image(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """A uint8 ``C x H x W`` tensor of the image, converted and resized to the run's image shape."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory's configuration and checkpoint (``torch.load(weights_only=True)``)."""
    run_dir = Path(run_dir)
    config = resume_config(run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    check_architecture(state, config.arch, run_dir / "checkpoint.pt")
    classes = list(state["classes"])
    shape = tuple(state["image_shape"])
    models = {name: build_model(config, len(classes), shape[0]) for name in ("student", "ema")}
    try:
        models["student"].load_state_dict(state["model"])
        models["ema"].load_state_dict(state["method"]["ema"]["module"])
    except (RuntimeError, KeyError) as error:
        raise MeanTeacherError(f"{run_dir}: checkpoint does not fit the configured model ({str(error).splitlines()[0]})") from None
    for model in models.values():
        model.eval()
    return LoadedRun(config, classes, shape, Normalizer.from_state_dict(state["normalizer"]), models)
