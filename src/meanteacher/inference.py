"""Using a finished (or running) run: evaluate its networks, predict classes of new images, export
the teacher (or student) and load it back as a plain ``nn.Module``.

It reads run directories without the trainer; the dataset readers are loaded when a run is
evaluated or asked for predictions, so ``import meanteacher`` stays light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import Config
from .data.augment import Normalizer
from .data.dataset import IMAGE_SUFFIXES
from .errors import DataError, MeanTeacherError
from .models import create_model, split_heads
from .run.evaluation import evaluate, evaluate_batches
from .run.rundir import RunDirectory, check_architecture, load_checkpoint


@dataclass
class LoadedRun:
    """A run's configuration, classes, normalizer and networks (``student`` and ``ema``), on CPU."""

    config: Config
    classes: list[str]
    image_shape: tuple[int, int, int]
    normalizer: Normalizer
    models: dict[str, nn.Module]

    @property
    def streamed(self) -> bool:
        """Whether the run streamed its images from their files (a streamed data format)."""
        from .data.formats import is_streamed

        return is_streamed(self.config.data_format)

    @property
    def predictor(self) -> nn.Module:
        """The network used for predictions: the EMA (Mean Teacher's teacher), usually the better one."""
        return self.models["ema"]

    def evaluate(
        self, data: str | None = None, precision: str | None = None, confusion: bool = False
    ) -> dict[str, Any]:
        """Error and classification cost of each network on the test split of the run's (or ``data``'s)
        dataset, in the run's precision (as during training) unless ``precision`` says otherwise; with
        ``confusion``, each network's confusion matrix too (``ema_confusion``, ``student_confusion``)."""
        num_classes = len(self.classes) if confusion else 0
        from .data.sources import load_dataset
        from .data.streaming import evaluation_loader

        precision = precision or self.config.precision
        dataset = load_dataset(
            data or self.config.dataset,
            None if data else (self.config.test_data or None),
            image_size=self.config.image_size,
            data_format=self.config.data_format if self.streamed or not data else "auto",
        )
        if dataset.streamed:
            loader = evaluation_loader(dataset, self.config.eval_batch_size, self.config.workers)
            return evaluate_batches(self.models, lambda: loader, precision, num_classes=num_classes)
        if dataset.image_shape != self.image_shape or dataset.classes != self.classes:
            raise MeanTeacherError(
                f"{data or self.config.dataset}: images {dataset.image_shape} / {len(dataset.classes)} classes do not "
                f"match the run's {self.image_shape} / {len(self.classes)} classes"
            )
        stored = self.normalizer.prepare(dataset.test_images)
        return evaluate(
            self.models,
            stored,
            dataset.test_labels,
            self.normalizer,
            self.config.eval_batch_size,
            precision,
            num_classes=num_classes,
        )

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
        from .data.streaming import eval_view, open_rgb

        files = image_files(paths)
        if self.streamed:
            labels, confidences = self._classify(
                torch.stack([eval_view(open_rgb(f), self.image_shape[1]) for f in files])
            )
        else:
            labels, confidences = self.predict(
                torch.stack([read_image(file, self.image_shape, self.config.image_size) for file in files])
            )
        return [(str(f), self.classes[int(label)], float(c)) for f, label, c in zip(files, labels, confidences)]


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


def read_image(path: Path, shape: tuple[int, int, int], image_size: int | None = None) -> torch.Tensor:
    """A uint8 ``C x H x W`` tensor of the image, converted and resized to the run's image shape (first
    brought down to ``image_size`` as the run's training images were, see ``data.image_files.fit_square``)."""
    from .data.image_files import decode_to_shape

    return decode_to_shape(str(path), path, shape, image_size)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory's configuration and checkpoint (``torch.load(weights_only=True)``)."""
    run_dir = Path(run_dir)
    config = RunDirectory(run_dir).read_config()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    check_architecture(state, config.arch, run_dir / "checkpoint.pt")
    classes = list(state["classes"])
    shape = tuple(state["image_shape"])
    models = {
        name: create_model(config.arch, len(classes), shape[0], **config.arch_options) for name in ("student", "ema")
    }
    try:
        models["student"].load_state_dict(state["model"])
        models["ema"].load_state_dict(state["method"]["ema"]["module"])
    except (RuntimeError, KeyError) as error:
        raise MeanTeacherError(
            f"{run_dir}: checkpoint does not fit the configured model ({str(error).splitlines()[0]})"
        ) from None
    for model in models.values():
        model.eval()
    return LoadedRun(config, classes, shape, Normalizer.from_state_dict(state["normalizer"]), models)


EXPORT_FORMAT = 1
NETWORKS = {"teacher": "ema", "ema": "ema", "student": "student"}
"""Which network to export or load: the teacher (the EMA of every method) or the raw student."""


def _network_name(which: str) -> str:
    if which not in NETWORKS:
        raise MeanTeacherError(f"unknown network {which!r}; expected teacher (the EMA) or student")
    return NETWORKS[which]


def export_model(run_dir: str | Path, out: str | Path, which: str = "teacher") -> tuple[Path, Path]:
    """Write a run's teacher (EMA) or student as a plain ``state_dict`` (``out``) and a small JSON
    beside it (``out`` with the suffix ``.json``) saying how to rebuild the network and prepare its
    inputs; ZCA statistics, too large for JSON, go to ``out`` with the suffix ``.zca.pt``. Returns
    the paths of the weights and the JSON."""
    from .files import atomic_torch_save, atomic_write_text

    run = load_run(run_dir)
    name = _network_name(which)
    out = Path(out)
    normalizer = run.normalizer.state_dict()
    description = {
        "format": EXPORT_FORMAT,
        "network": "teacher" if name == "ema" else "student",
        "method": run.config.method,
        "arch": run.config.arch,
        "arch_options": run.config.arch_options,
        "classes": run.classes,
        "image_shape": list(run.image_shape),
        "streaming": run.streamed,
        "precision": run.config.precision,
        "normalize": {"mode": normalizer["mode"], "epsilon": normalizer["epsilon"], "gcn": normalizer["gcn"]},
        "run": str(run_dir),
    }
    if normalizer["mode"] == "zca":
        zca = out.with_suffix(".zca.pt")
        atomic_torch_save(normalizer["stats"], zca)
        description["normalize"]["stats_file"] = zca.name
    else:
        description["normalize"]["stats"] = {k: v.tolist() for k, v in normalizer["stats"].items()}
    atomic_torch_save(run.models[name].state_dict(), out)
    description_path = out.with_suffix(".json")
    atomic_write_text(description_path, json.dumps(description, indent=2) + "\n")
    return out, description_path


def _read_export(path: Path) -> dict:
    description_path = path.with_suffix(".json")
    try:
        description = json.loads(description_path.read_text())
    except FileNotFoundError:
        raise MeanTeacherError(
            f"{path}: no {description_path.name} beside it (written by `meanteacher export`)"
        ) from None
    except json.JSONDecodeError as error:
        raise MeanTeacherError(f"{description_path}: not valid JSON ({error})") from None
    if description.get("format") != EXPORT_FORMAT:
        raise MeanTeacherError(f"{description_path}: not a meanteacher export (format {EXPORT_FORMAT})")
    return description


def load_model(path: str | Path, which: str = "teacher") -> nn.Module:
    """The network of a run directory (its ``which``: teacher, i.e. the EMA, or student) or of a file
    written by :func:`export_model`, in eval mode on the CPU, ready for inference. Weights are read
    with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.is_dir():
        return load_run(path).models[_network_name(which)]
    if not path.is_file():
        raise MeanTeacherError(f"{path}: no such run directory or exported model")
    description = _read_export(path)
    model = create_model(
        description["arch"], len(description["classes"]), description["image_shape"][0], **description["arch_options"]
    )
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # noqa: BLE001 - any failure to read or fit the weights is a bad file
        raise MeanTeacherError(
            f"{path}: weights do not load into {description['arch']} ({str(error).splitlines()[0][:160]})"
        ) from None
    return model.eval()


def exported_normalizer(path: str | Path) -> Normalizer:
    """The input normalisation an exported model expects (apply it to uint8 ``N x C x H x W`` images)."""
    path = Path(path)
    settings = _read_export(path)["normalize"]
    normalizer = Normalizer(settings["mode"], settings["epsilon"], settings["gcn"])
    if "stats_file" in settings:
        normalizer.stats = torch.load(path.parent / settings["stats_file"], map_location="cpu", weights_only=True)
    else:
        normalizer.stats = {k: torch.tensor(v) for k, v in settings["stats"].items()}
    return normalizer
