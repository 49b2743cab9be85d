"""A run's plan, made once before it starts: its configuration with every automatic setting resolved for its
data and device, the data read and the labels split. A refit (``--time``) changes it through ``replan``
alone, which derives again what follows the steps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config, apply_settings
from ..config.auto import FOLLOW_THE_STEPS, auto_values, resolve_auto, resolve_image_size
from ..data.sources import DataSource, load_dataset
from ..data.splits import LabelSplit, make_split
from ..methods import Method, method_class


@dataclass(frozen=True)
class RunPlan:
    """What a run does, decided once: ``config`` with every setting's value; ``requested``, the config its
    automatic settings were resolved from (a refit derives them again from it); the data, its labeled
    split and the training labels as the run sees them (hidden ones ``NO_LABEL``); the method's class; and
    what ``auto.resolve_auto`` takes besides a config (``auto_inputs``)."""

    config: Config
    requested: Config
    dataset: DataSource
    split: LabelSplit
    masked_labels: torch.Tensor
    method: type[Method]
    auto_inputs: tuple[Any, ...]


def plan_run(
    config: Config, device_type: str, dataset: DataSource | None = None, requested: Config | None = None
) -> RunPlan:
    """The plan of a run of ``config`` on a ``device_type`` device, its data read unless ``dataset`` is given.
    ``requested``: the config the automatic settings come from when it is not ``config`` (a run fitted to
    its time gives the one before the fit, whose steps and cadence were still automatic)."""
    config = resolve_image_size(config)
    dataset = read_data(config) if dataset is None else dataset
    split, masked_labels = make_split(
        dataset, config.labels, config.seed, config.label_file, config.validation_per_class
    )
    all_labeled = len(split.labeled) == len(split.unlabeled) and config.extra_unlabeled == 0 and not dataset.pile_size
    auto_inputs = (dataset.num_classes, all_labeled, len(split.labeled), device_type)
    resolved = resolve_auto(config, *auto_inputs)
    method = method_class(config.method)
    return RunPlan(resolved, requested or config, dataset, split, masked_labels, method, auto_inputs)


def read_data(config: Config) -> DataSource:
    """The data of a run of ``config``, read at the image size the run will use: decoded into memory, or a
    streamed folder's index."""
    config = resolve_image_size(config)
    return load_dataset(
        config.dataset,
        config.test_data or None,
        extra=config.extra_unlabeled != 0,
        image_size=config.image_size,
        unlabeled=config.unlabeled,
        data_format=config.data_format,
    )


def replan(plan: RunPlan, steps: int, evaluations: int | None) -> RunPlan:
    """``plan`` at ``steps`` steps: what follows the steps (``auto.FOLLOW_THE_STEPS``) derived again where the
    run left it automatic, and an automatic evaluation cadence spread over ``evaluations`` evaluations (a
    run without a time budget keeps its cadence: None)."""
    requested = plan.requested
    derived = auto_values(apply_settings(requested, {"steps": steps}, "time budget"), *plan.auto_inputs)
    settings: dict[str, Any] = {"steps": steps}
    settings |= {name: derived[name] for name in FOLLOW_THE_STEPS if getattr(requested, name) is None}
    if requested.eval_every is None and evaluations is not None:
        settings["eval_every"] = max(1, steps // evaluations)
    return dataclasses.replace(plan, config=apply_settings(plan.config, settings, "time budget"))
