"""Which training examples keep their labels: balanced selection by seed, label-list files, hold-out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import DataError
from ..files import atomic_write_text
from .batch import NO_LABEL

if TYPE_CHECKING:
    from .dataset import Dataset


@dataclass
class LabelSplit:
    """Indices into the training set: ``labeled`` examples keep labels, ``validation`` ones are held out
    (excluded from training), ``unlabeled`` is the pool every example is drawn from without its label."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor
    validation: torch.Tensor


def _per_class_permutations(labels: torch.Tensor, num_classes: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    permutations = []
    for label in range(num_classes):
        members = torch.nonzero(labels == label).flatten()
        permutations.append(members[torch.randperm(len(members), generator=generator)])
    return permutations


def labels_per_class(count: int, available: list[int]) -> list[int]:
    """How many of ``count`` labels each class gets: as equal as possible (the first classes take the
    remainder), none more than the class has; what a small class cannot take goes to the others."""
    shares = [0] * len(available)
    remaining, open_classes = count, list(range(len(available)))
    while remaining > 0 and open_classes:
        even, extra = divmod(remaining, len(open_classes))
        for position, label in enumerate(open_classes):
            take = min(even + (position < extra), available[label] - shares[label])
            shares[label] += take
            remaining -= take
        open_classes = [label for label in open_classes if shares[label] < available[label]]
    return shares


def balanced_split(
    labels: torch.Tensor, count: int | None, num_classes: int, seed: int, validation_per_class: int = 0
) -> LabelSplit:
    """Keep ``count`` labels spread evenly over the classes (``labels_per_class``), chosen by ``seed``
    (``None``: every label).

    ``validation_per_class`` examples of each class are first set aside for model selection and
    take no part in training. Different seeds give different label sets, as the paper's runs.
    """
    total = len(labels)
    if count is not None:
        if count <= 0:
            raise DataError(f"--labels must be positive, got {count}")
        if count < num_classes:
            raise DataError(f"fewer labels ({count}) than classes ({num_classes}): every class needs a labeled image")
    members_of = _per_class_permutations(labels, num_classes, seed)
    for label, members in enumerate(members_of):
        if validation_per_class and len(members) <= validation_per_class:
            raise DataError(
                f"class {label} has {len(members)} training images, too few to hold out {validation_per_class} for validation"
            )
    available = [len(members) - validation_per_class for members in members_of]
    if count is not None and count > sum(available):
        raise DataError(f"more labels requested ({count}) than training images ({sum(available)})")
    shares = available if count is None else labels_per_class(count, available)
    labeled = [
        members[validation_per_class : validation_per_class + share] for members, share in zip(members_of, shares)
    ]
    validation = [members[:validation_per_class] for members in members_of]
    labeled_index = torch.sort(torch.cat(labeled)).values
    validation_index = torch.sort(torch.cat(validation)).values
    keep = torch.ones(total, dtype=torch.bool)
    keep[validation_index] = False
    return LabelSplit(labeled_index, torch.nonzero(keep).flatten(), validation_index)


def split_from_labels(labeled: torch.Tensor, total: int, validation: torch.Tensor | None = None) -> LabelSplit:
    """A split from an explicit list of labeled indices (every example not held out for ``validation``
    stays in the unlabeled pool)."""
    validation = torch.zeros(0, dtype=torch.long) if validation is None else torch.sort(validation).values
    keep = torch.ones(total, dtype=torch.bool)
    keep[validation] = False
    return LabelSplit(torch.sort(labeled).values, torch.nonzero(keep).flatten(), validation)


def read_label_file(path: str | Path, ids: list[str], classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``image-id label`` lines; returns (indices, labels). Labels may be class names or numbers."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read label file ({error.strerror})") from None
    position = {image_id: index for index, image_id in enumerate(ids)}
    class_index = {name: index for index, name in enumerate(classes)}
    indices, labels = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected 'image-id label', got {line.strip()!r}")
        image_id, label = parts
        if image_id not in position:
            raise DataError(f"{path}:{number}: unknown image {image_id!r}")
        if label in class_index:
            value = class_index[label]
        elif label.isdigit() and int(label) < len(classes):
            value = int(label)
        else:
            raise DataError(f"{path}:{number}: unknown class {label!r}")
        indices.append(position[image_id])
        labels.append(value)
    if not indices:
        raise DataError(f"{path}: no labels in file")
    return torch.tensor(indices), torch.tensor(labels)


def write_label_file(
    path: str | Path, ids: list[str], classes: list[str], indices: torch.Tensor, labels: torch.Tensor
) -> None:
    """Write ``image-id class-name`` lines for the given examples (atomically)."""
    text = "".join(f"{ids[i]} {classes[label]}\n" for i, label in zip(indices.tolist(), labels.tolist()))
    atomic_write_text(path, text)


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
