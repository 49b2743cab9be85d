"""The checks of a run's configuration: the first setting that cannot work, named in one line."""

from __future__ import annotations

from ..errors import MeanTeacherError
from ..methods import METHODS, Method, method_class
from .schema import AUTO_FIELDS, Config


def validate(config: Config) -> None:
    """Raise ``MeanTeacherError`` naming the first setting that cannot work."""
    choices = {
        "optimizer": ("adam", "sgd"),
        "lr_schedule": ("sigmoid", "cosine", "constant"),
        "precision": ("fp32", "bf16"),
        "normalize": ("standardize", "per_image", "zca", "none"),
        "fill": ("reflect", "zero"),
        "student_view": ("weak", "strong", "photometric"),
        "ema_buffers": ("own", "copy", "average"),
        "class_normalize": ("batch", "labeled"),
        "logit_distance_classes": ("mean", "sum"),
    }
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed and not (name in AUTO_FIELDS and getattr(config, name) is None):
            raise MeanTeacherError(f"unknown {name} {getattr(config, name)!r}; expected one of: {', '.join(allowed)}")
    try:
        method = method_class(config.method)
    except ValueError as error:
        raise MeanTeacherError(str(error)) from None
    if not config.dataset:
        raise MeanTeacherError("no dataset: pass --data PATH (or 'digits' for the built-in one)")
    positive = ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_batch_size")
    for name in positive:
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise MeanTeacherError(f"{name} must be positive, got {getattr(config, name)}")
    if config.time_budget is not None and config.time_budget <= 0:
        raise MeanTeacherError(f"time_budget must be positive seconds, got {config.time_budget}")
    if config.image_size is not None and config.image_size < 1:
        raise MeanTeacherError(f"image_size must be a positive number of pixels, got {config.image_size}")
    if config.checkpoint_seconds < 0:
        raise MeanTeacherError(f"checkpoint_seconds must be >= 0, got {config.checkpoint_seconds}")
    for name in ("ema_decay", "ema_decay_rampup"):
        if getattr(config, name) is not None and not 0.0 <= getattr(config, name) < 1.0:
            raise MeanTeacherError(f"{name} must be in [0, 1) or auto, got {getattr(config, name)}")
    if config.labeled_per_batch is not None and not -1 <= config.labeled_per_batch <= config.batch_size:
        raise MeanTeacherError(f"labeled_per_batch must be auto, -1 or in [0, batch_size={config.batch_size}]")
    for name in ("rampup_steps", "rampdown_steps", "consistency"):
        if getattr(config, name) is not None and getattr(config, name) < 0:
            raise MeanTeacherError(f"{name} must be >= 0 or auto, got {getattr(config, name)}")
    if config.labels < 0:
        raise MeanTeacherError(f"labels must be >= 0 (0 keeps every label), got {config.labels}")
    if config.device not in ("auto", "cpu") and not config.device.startswith("cuda"):
        raise MeanTeacherError(f"unknown device {config.device!r}; expected auto, cpu or cuda[:N]")
    if (config.cuda_graphs or config.device_schedules) and config.optimizer != "adam":
        raise MeanTeacherError("cuda_graphs and device_schedules work with optimizer 'adam' (CapturableAdam)")
    if config.cuda_graphs and not method.capturable:
        raise MeanTeacherError(
            f"cuda_graphs does not capture {config.method}: its passes save and restore the random state"
        )
    streamed = _check_data_format(config)
    if config.student_view not in (None, "weak"):
        if streamed or config.normalize == "zca":
            raise MeanTeacherError(
                f"student_view={config.student_view!r} works on images held in memory as pixels "
                f"(not with {'a streamed folder' if streamed else 'normalize zca'})"
            )
        if config.strong_ops < 0 or not 0 <= config.strong_magnitude <= 1 or not 0 <= config.cutout <= 1:
            raise MeanTeacherError("strong_ops must be >= 0, strong_magnitude and cutout in [0, 1]")
    if config.unlabeled and streamed:
        raise MeanTeacherError(f"a streamed folder takes no unlabeled pile (--unlabeled) yet: {config.dataset}")
    _check_method_options(config, method)
    if config.unlabeled_ratio < 0:
        raise MeanTeacherError(f"unlabeled_ratio must be >= 0, got {config.unlabeled_ratio}")
    if (
        config.unlabeled_ratio > 0
        and config.labeled_per_batch is not None
        and config.labeled_per_batch != round(config.batch_size / (1 + config.unlabeled_ratio))
    ):
        raise MeanTeacherError(
            "set unlabeled_ratio or labeled_per_batch, not both: the ratio decides the labeled share of a batch"
        )
    if config.consistency_type is not None:
        _check_consistency_type(config, method)


def _check_method_options(config: Config, method: type[Method]) -> None:
    for name in config.method_options:
        if name != method.name:
            raise MeanTeacherError(
                f"options for {name!r} ([{name}] or --set {name}.*), but the run's method is {method.name}"
            )
    try:
        method.options(config)
    except ValueError as error:
        raise MeanTeacherError(str(error)) from None


def _check_consistency_type(config: Config, method: type[Method]) -> None:
    from ..losses import consistency_cost
    from ..pseudo_labels import is_pseudo_label_type, parse_threshold

    try:
        if is_pseudo_label_type(config.consistency_type):
            parse_threshold(config.consistency_type)
        else:
            consistency_cost(config.consistency_type)
    except ValueError as error:
        raise MeanTeacherError(str(error)) from None
    if is_pseudo_label_type(config.consistency_type) and not method.takes_pseudo_labels:
        takers = [name for name, cls in METHODS.items() if cls.takes_pseudo_labels]
        raise MeanTeacherError(
            f"consistency_type {config.consistency_type!r} works with {' and '.join(takers)}, not {config.method}"
        )
    if method.needs_pseudo_labels and not is_pseudo_label_type(config.consistency_type):
        raise MeanTeacherError(
            f"{config.method} trains on pseudo-labels: consistency_type must be 'pseudo:<threshold>' or "
            f"'pseudo:adaptive', not {config.consistency_type!r}"
        )


def _check_data_format(config: Config) -> bool:
    """That the run's data format is one that exists; whether it streams its images."""
    from ..data.formats import is_streamed

    try:
        return is_streamed(config.data_format)
    except ValueError as error:
        raise MeanTeacherError(str(error)) from None
