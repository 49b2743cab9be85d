"""Automatic settings: the rules that turn a run's length, batch, classes, labels and machine into the
numbers its ``None`` ("auto") settings stand for, resolved once before the run starts and written into
its ``config.toml``. Presets start from the paper's values instead (``config.PAPER_SCHEDULE``)."""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..methods import method_class
from ..pseudo_labels import is_pseudo_label_type
from .schema import AUTO_FIELDS, Config, apply_settings

RAMPUP_SHARE = 40_000 / 150_000
"""Ramp-up length as a share of the run: the paper's 40k of 150k steps."""
RAMPDOWN_SHARE = 25_000 / 150_000
"""Ramp-down length as a share of the run: the paper's 25k of 150k steps."""
EMA_WINDOW_SHARE = 1 / 50
"""The EMA averages over about ``1 / (1 - decay)`` steps: a 50th of the run, 10 to 1,000 steps."""
LABELED_SHARE = 0.5
"""Share of every batch given to labeled images when only some images are labeled..."""
SHORT_RUN_PASSES = 50
SHORT_RUN_LABELED_SHARE = 0.75
"""...unless the run is short for its label count: fewer than ``SHORT_RUN_PASSES`` passes over the
labeled images at half of each batch. Then three quarters of each batch are labeled."""
CONSISTENCY_PAYS_FROM_PASSES = 75
"""On CIFAR-10 (docs/benchmarks.md) Mean Teacher beat supervised-only from about 75 passes over the
labeled images and was level or behind below; a run that makes fewer is told so before it starts."""
STRONG_VIEW_EVIDENCE = (
    "with the strong student view, Mean Teacher as set by default has not beaten supervised-only on CIFAR-10 at "
    "CPU budgets (1000 labels, 1500 steps, 3 label sets: supervised-only 39.9 %, Mean Teacher 43.9 %); trained on "
    "its teacher's confident labels with supervised-only's whole labeled batch beside as many unlabeled images "
    "(--consistency-type pseudo:0.8 --batch-size 200 --labeled-per-batch 100, a step twice as dear) it was level at "
    "1000 labels and 1500 steps (39.9 %), ahead at 1000 labels and 5000 steps (34.0 % against 36.5 %) and at 250 labels "
    "and 1500 steps (52.6 % against 55.9 %), but behind on a photo folder at 100 labels in 10 minutes on 2 CPU cores "
    "(70.5 % against 68.2 %; docs/benchmarks.md): compare with --method supervised"
)
"""Said at the start of a semi-supervised run with the strong student view (``benchmarks.pseudo`` and
``benchmarks.strong``): the evidence of where the unlabeled images paid and where they did not."""
EVALUATIONS_PER_RUN = 25
"""Evaluations in a run whose cadence is automatic: enough points for a learning curve (Figure 3) in a
run of any length; fewer where they would take more than ``EVALUATION_SHARE`` of the training time, but
not fewer than ``MIN_EVALUATIONS`` unless those would take more than ``MAX_EVALUATION_SHARE``
(``run.budget.evaluations_within``)."""
EVALUATION_SHARE = 0.1
MIN_EVALUATIONS = 15
MAX_EVALUATION_SHARE = 0.15
CONSISTENCY_PER_CLASS = 3.0
"""MSE consistency weight per class (the authors' rule of thumb: between C and C**2 for C classes)."""

FOLDER_IMAGE_SIZE = 32
"""Default side of in-memory image folders: larger photos are brought down to 32 x 32 as they are decoded.
The smallest size measured, chosen by ``python -m benchmarks.image_size`` (docs/benchmarks.md, "Image
size for a folder of photos": even 32 px falls short of the steps a CPU user wants in 10 minutes)."""
CPU_WIDTH = 0.25
"""Width of ConvNet-13 on a CPU where neither the run nor its preset sets one (``arch_options.width``
auto): chosen by ``python -m benchmarks.image_size`` (docs/benchmarks.md, "Image size for a folder of
photos", which times each width). On a GPU: the paper's 1."""
STUDENT_VIEW = "strong"
"""The student's view in a run without a preset, where its images are held in memory as pixels: chosen on
a validation folder of photos (``python -m benchmarks.photo_recipe``, docs/benchmarks.md, "The photo
folder's recipe, chosen on validation"). Streamed or ZCA-whitened images keep the paper's weak noise."""
CONSISTENCY_TYPE = "mse"
"""The consistency cost in a run without a preset, for a method without one of its own (``auto_consistency_type``)."""
STREAMED_IMAGE_SIZE = 224
"""Default crop of streamed (ImageNet-style) folders: the paper's ResNeXt runs."""


FOLLOW_THE_STEPS = ("rampup_steps", "rampdown_steps", "ema_decay", "ema_decay_rampup")
"""The automatic settings derived from a run's step count (besides its evaluation cadence): derived again
when a ``--time`` run refits its steps, so that the ramps keep their shares of the run."""


class ScheduleWarning(UserWarning):
    """A setting that cannot do what it is for in this run (e.g. a ramp longer than the run)."""


class PrecisionWarning(UserWarning):
    """A precision that makes the run slower, not faster, on this machine (bf16 on a CPU that emulates it)."""


def auto_values(
    config: Config, num_classes: int, all_labeled: bool, labeled_images: int, device_type: str = "cpu"
) -> dict[str, Any]:
    """What each automatic setting stands for in a run of ``config.steps`` steps with ``num_classes``
    classes and ``labeled_images`` labeled training images (``all_labeled``: every training image
    keeps its label) on a ``device_type`` device."""
    from ..hardware import cpu_has_native_bf16

    steps = config.steps
    method = method_class(config.method)
    consistency_type = config.consistency_type or method.auto_consistency_type or CONSISTENCY_TYPE
    decay = 1.0 - 1.0 / min(max(steps * EMA_WINDOW_SHARE, 10.0), 1000.0)
    ema_decay = decay if config.ema_decay is None else config.ema_decay
    passes = steps * config.batch_size * LABELED_SHARE / max(labeled_images, 1)
    labeled_share = SHORT_RUN_LABELED_SHARE if passes < SHORT_RUN_PASSES else LABELED_SHARE
    if config.unlabeled_ratio > 0:  # FixMatch's mu
        labeled_per_batch = round(config.batch_size / (1 + config.unlabeled_ratio))
    else:
        labeled_per_batch = math.floor(config.batch_size * labeled_share)
    cross_entropy = method.consistency_is_cross_entropy or is_pseudo_label_type(consistency_type)  # weight 1
    return {
        "rampup_steps": round(steps * RAMPUP_SHARE),
        "rampdown_steps": round(steps * RAMPDOWN_SHARE),
        "ema_decay": round(ema_decay, 6),
        "ema_decay_rampup": round(min(0.99, ema_decay), 6),
        "consistency": 1.0 if cross_entropy else CONSISTENCY_PER_CLASS * num_classes,
        "consistency_type": consistency_type,
        "labeled_per_batch": -1 if all_labeled else max(1, labeled_per_batch),
        "precision": "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "fp32",
        "eval_every": max(1, steps // EVALUATIONS_PER_RUN),
        "student_view": "weak" if _streamed(config) or config.normalize == "zca" else STUDENT_VIEW,
    }


def _streamed(config: Config) -> bool:
    from ..data.formats import is_streamed

    return is_streamed(config.data_format)


def _width_is_auto(config: Config) -> bool:
    return "width" in config.arch_options and str(config.arch_options["width"]).lower() in ("none", "auto")


def resolve_width(config: Config, device_type: str = "cpu") -> Config:
    """``config`` with an automatic ``arch_options.width`` set: ``CPU_WIDTH`` for ConvNet-13 on a CPU,
    the paper's 1 for it elsewhere; for other architectures the option is dropped (their own default)."""
    if not _width_is_auto(config):
        return config
    options = {name: value for name, value in config.arch_options.items() if name != "width"}
    if config.arch == "convnet13":
        options["width"] = CPU_WIDTH if device_type == "cpu" else 1.0
    return apply_settings(config, {"arch_options": options}, "auto")


def resolve_auto(
    config: Config, num_classes: int, all_labeled: bool, labeled_images: int, device_type: str = "cpu"
) -> Config:
    """A copy of ``config`` with every automatic (``None``) setting replaced by its number (see ``auto_values``
    and ``resolve_width``); warns (``ScheduleWarning``) about a ramp set longer than the run, and
    (``PrecisionWarning``) about bf16 asked for on a CPU that has no bf16 in hardware."""
    derived = auto_values(config, num_classes, all_labeled, labeled_images, device_type)
    resolved = apply_settings(
        resolve_width(config, device_type), {k: v for k, v in derived.items() if getattr(config, k) is None}, "auto"
    )
    for name, what in (
        ("rampup_steps", "the consistency weight and learning rate never reach their full values"),
        ("rampdown_steps", "the learning rate starts falling before the run begins"),
    ):
        length = getattr(resolved, name)
        if length > resolved.steps and not (name == "rampdown_steps" and resolved.lr_schedule != "sigmoid"):
            warnings.warn(
                f"{name}={length} is longer than the run ({resolved.steps} steps): {what}",
                ScheduleWarning,
                stacklevel=2,
            )
    from ..hardware import cpu_has_native_bf16

    if resolved.precision == "bf16" and device_type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "bf16 asked for on a CPU without bf16 in hardware (AVX512_BF16 or AMX): it is emulated there, several "
            "times slower than fp32 (docs/benchmarks.md); --precision fp32 runs faster",
            PrecisionWarning,
            stacklevel=2,
        )
    return resolved


def resolve_image_size(config: Config) -> Config:
    """``config`` with its image size set (``FOLDER_IMAGE_SIZE`` or, streamed, ``STREAMED_IMAGE_SIZE``)
    unless it is; needed before the data is read, so resolved apart from ``resolve_auto``."""
    if config.image_size is not None:
        return config
    return apply_settings(
        config, {"image_size": STREAMED_IMAGE_SIZE if _streamed(config) else FOLDER_IMAGE_SIZE}, "auto"
    )


def has_auto(config: Config) -> bool:
    """Whether some setting is still automatic (``None``: not yet resolved for a run)."""
    return any(getattr(config, name) is None for name in AUTO_FIELDS) or _width_is_auto(config)
