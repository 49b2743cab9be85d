"""Which images to label next: a finished run's unlabeled images (its pile and the images whose labels it
hid), or any other images, ranked by how much a label would be worth to the run's networks.

``disagreement``: the consistency cost between the student and the teacher, each on its own noisy view,
averaged over ``view_pairs`` pairs of views (Gao et al., 2020: consistency-based selection); ``entropy``: the
teacher's predictive entropy; ``margin``: one minus the teacher's top-two margin; ``random``: the baseline.
A higher score ranks first.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .data.augment import Augmenter
from .data.batch import NO_LABEL
from .data.pile import ImageProgress, load_pile
from .errors import MeanTeacherError
from .models import split_heads
from .run.evaluation import autocast

if TYPE_CHECKING:
    from .inference import LoadedRun

STRATEGIES = ("disagreement", "entropy", "margin", "random")
DEFAULT_STRATEGY = "random"
"""No strategy has picked better than chance on a validation split (``python -m benchmarks.label_next``,
docs/benchmarks.md): chance stays the default."""


@dataclass
class Candidates:
    """Unlabeled images (uint8 ``N x C x H x W`` of the run's shape), their names, and the file each came
    from where there is one (None for an archive member or an image of a CIFAR-style file)."""

    images: torch.Tensor
    names: list[str]
    files: list[Path | None]


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def run_candidates(run: LoadedRun) -> Candidates:
    """The run's own unlabeled images: its pile, then the training images whose labels it hid."""
    from .data.sources import load_dataset
    from .data.splits import make_split

    config = run.config
    if run.streamed:
        raise MeanTeacherError(
            "suggest reads runs on images held in memory; for a streamed run name the images with --from"
        )
    dataset = load_dataset(
        config.dataset,
        config.test_data or None,
        image_size=config.image_size,
        unlabeled=config.unlabeled,
        data_format=config.data_format,
    )
    split, masked = make_split(dataset, config.labels, config.seed, config.label_file, config.validation_per_class)
    hidden = split.unlabeled[masked[split.unlabeled] == NO_LABEL]
    root = Path(config.dataset)
    hidden_files = [
        _existing(root / "train" / dataset.train_ids[i]) or _existing(root / dataset.train_ids[i])
        for i in hidden.tolist()
    ]
    pile_files = [_existing(Path(name)) or _existing(root / name) for name in dataset.unlabeled_ids]
    images = (
        [dataset.train_images[hidden]]
        if dataset.unlabeled_images is None
        else [dataset.unlabeled_images, dataset.train_images[hidden]]
    )
    names = dataset.unlabeled_ids + [dataset.train_ids[i] for i in hidden.tolist()]
    files = pile_files + hidden_files
    return Candidates(torch.cat(images), names, files)


def path_candidates(paths: list[str], shape: tuple[int, int, int]) -> Candidates:
    """Images named by ``--from``: folders (any depth), archives or text files of image paths."""
    pile = load_pile(paths, shape)
    return Candidates(pile["images"], pile["ids"], [_existing(Path(name)) for name in pile["ids"]])


@torch.no_grad()
def score(
    run: LoadedRun, images: torch.Tensor, by: str, view_pairs: int = 4, seed: int = 0, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image's score under strategy ``by``, the teacher's predicted class and its probability."""
    if by not in STRATEGIES:
        raise MeanTeacherError(f"unknown strategy {by!r}: one of {', '.join(STRATEGIES)}")
    teacher, student = run.models["ema"].eval(), run.models["student"].eval()
    noise = Augmenter(run.config.translate, run.config.flip, 0.0, run.config.fill)
    generator = torch.Generator().manual_seed(seed)
    scores, classes, confidences = [], [], []
    progress = ImageProgress(len(images), "suggest", verb="scored")
    precision = autocast(torch.device("cpu"), run.config.precision or "fp32")  # the run's own arithmetic
    for start in range(0, len(images), batch_size):
        inputs = run.normalizer(run.normalizer.prepare(images[start : start + batch_size]))
        with precision:
            probabilities = split_heads(teacher(inputs))[0].float().softmax(1)
        top = probabilities.topk(min(2, probabilities.shape[1]), dim=1).values
        confidence, predicted = probabilities.max(1)
        if by == "entropy":
            batch_score = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(1)
        elif by == "margin":
            batch_score = 1 - (top[:, 0] - top[:, -1])
        elif by == "disagreement":
            batch_score = torch.zeros(len(inputs))
            for _ in range(view_pairs):
                student_input, teacher_input = noise(inputs, generator), noise(inputs, generator)
                with precision:
                    student_view = split_heads(student(student_input))[0].float().softmax(1)
                    teacher_view = split_heads(teacher(teacher_input))[0].float().softmax(1)
                batch_score += ((student_view - teacher_view) ** 2).sum(1) / view_pairs
        else:
            batch_score = torch.rand(len(inputs), generator=generator)
        scores.append(batch_score)
        classes.append(predicted)
        confidences.append(confidence)
        progress.update(min(start + batch_size, len(images)))
    progress.close(len(images))
    return torch.cat(scores), torch.cat(classes), torch.cat(confidences)


def rank(scores: torch.Tensor, classes: torch.Tensor | None = None) -> list[int]:
    """Positions by descending score; with ``classes``, spread over them: round after round, the best
    remaining image of each predicted class, the rounds in descending score."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    if classes is None:
        return order
    seen: dict[int, int] = {}
    rounds = []
    for i in order:
        label = int(classes[i])
        rounds.append((seen.get(label, 0), i))
        seen[label] = seen.get(label, 0) + 1
    return [i for _, i in sorted(rounds, key=lambda entry: (entry[0], -float(scores[entry[1]])))]


def copy_picks(candidates: Candidates, picks: list[int], destination: Path) -> int:
    """Copy the picked images into ``destination`` (their files, or PNGs of the stored images where
    there is no file), each name led by its rank; returns how many were written."""
    from PIL import Image

    destination.mkdir(parents=True, exist_ok=True)
    for rank_number, index in enumerate(picks, start=1):
        source = candidates.files[index]
        name = Path(candidates.names[index]).name
        if source is not None:
            shutil.copy2(source, destination / f"{rank_number:05d}-{name}")
        else:
            array = candidates.images[index].permute(1, 2, 0).squeeze(2).numpy()
            Image.fromarray(array).save(destination / f"{rank_number:05d}-{Path(name).stem}.png")
    return len(picks)
