"""What a run can be set to: one dataclass of every setting (a method's own options under its name), and
settings applied on top of it (``apply_settings``)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import MeanTeacherError

AUTO_FIELDS = {
    "rampup_steps": int,
    "rampdown_steps": int,
    "ema_decay": float,
    "ema_decay_rampup": float,
    "consistency": float,
    "consistency_type": str,
    "labeled_per_batch": int,
    "precision": str,
    "eval_every": int,
    "student_view": str,
}
"""Settings that may be left to the run (``None``, written "auto" in TOML and on the command line): derived
from its length, batch, classes and labels by ``auto.resolve_auto``, once, before the run starts."""
OPTIONAL_FIELDS = {**AUTO_FIELDS, "image_size": int, "time_budget": float}
"""Settings that may be ``None`` ("auto"), with the type of their values."""

PAPER_SCHEDULE = {
    "rampup_steps": 40_000,
    "rampdown_steps": 25_000,
    "ema_decay": 0.999,
    "ema_decay_rampup": 0.99,
    "consistency": 100.0,
    "consistency_type": "mse",
    "labeled_per_batch": -1,
    "class_normalize": "batch",
    "precision": "fp32",
    "arch_options": {},
    "eval_every": 500,
    "student_view": "weak",
}
"""The paper's TensorFlow ConvNet runs: what a preset starts from before its own values."""


@dataclass
class Config:
    """Everything that defines a run. Step counts are optimizer steps.

    Settings left at ``None`` ("auto") are derived from the run by ``auto.resolve_auto`` before it starts (the run's
    ``config.toml`` records the numbers): ramp-up and ramp-down are the paper's shares of its 150k-step
    run (27 % and 17 %), the EMA averages over a 50th of the run, half of every batch is labeled and the
    consistency weight is 3 per class. A preset starts from the paper's exact values instead.
    """

    description: str = ""
    # data
    dataset: str = ""
    test_data: str = ""
    data_format: str = "auto"
    """How ``dataset`` is read: "auto" (the format that recognises it), a format's name, or
    ``package.module:Class`` (a format of one's own, see ``data.formats``). "streamed-folder": a folder too
    large for memory, each batch decoded from its files in DataLoader workers (Appendix B.2.2 views)."""
    labels: int = 0
    """Labeled examples, balanced across classes; 0 keeps every training label."""
    label_file: str = ""
    validation_per_class: int = 0
    extra_unlabeled: int = 0
    """SVHN ``extra`` images added to the unlabeled pool: 0 none, -1 all."""
    unlabeled: list[str] = field(default_factory=list)
    """Unlabeled piles (``--unlabeled``): folders, archives or text files of image paths whose images join
    the unlabeled stream, besides an ``unlabeled/`` folder in the dataset itself."""
    normalize: str = "standardize"
    translate: int = 2
    flip: bool = False
    """Mirror a random half of the images left to right. Off unless set (on a validation split of CIFAR-10,
    flips did not help a short run: docs/benchmarks.md, "Flips for colour photos"); presets set the paper's choice."""
    fill: str = "reflect"
    student_view: str | None = None
    """The student's noise. "weak": the paper's (translation, flips), the teacher's too. "strong": weak, then
    ``strong_ops`` RandAugment-style operations of random strength up to ``strong_magnitude`` and cutout
    (``data/strong.py``). "photometric": strong without the operations that move pixels (for dense
    outputs). The teacher's view stays weak; supervised-only gets the student's. Auto: strong for images
    held in memory (``auto.STUDENT_VIEW``), weak when streamed or ZCA-whitened; presets: the paper's weak."""
    strong_ops: int = 2
    strong_magnitude: float = 1.0
    """Largest strength of a strong operation, as a share of its range (each image draws up to this)."""
    cutout: float = 0.5
    """Side of cutout's square in the strong view, as a share of the image's shorter side (0: none)."""
    # model
    arch: str = "convnet13"
    arch_options: dict[str, Any] = field(default_factory=lambda: {"width": None})
    """Options of the architecture. ``width`` auto: ``CPU_WIDTH`` for ConvNet-13 on a CPU, else the
    architecture's own (dropped for other architectures); presets keep the paper's width unless they set one."""
    init: str = ""
    """Warm start: the student and the teacher begin from this run directory's EMA network (or a file of a
    ``state_dict`` of the same architecture, as ``meanteacher export`` writes) instead of random weights."""
    # method
    method: str = "mean-teacher"
    consistency: float | None = None
    consistency_type: str | None = None
    """"mse", "kl", "tau:<t>" (Appendix C), or confident pseudo-labels: "pseudo:<threshold>" (FixMatch's cost,
    e.g. "pseudo:0.95") or "pseudo:adaptive" (FreeMatch's self-adaptive threshold); the pseudo-label
    cost works with the methods that take it (mean-teacher and fixmatch). Auto: the method's own
    (``auto_consistency_type``: fixmatch's "pseudo:0.95"), else ``auto.CONSISTENCY_TYPE``; presets: the paper's "mse"."""
    consistency_on_labeled: bool = True
    rampup_steps: int | None = None
    """Sigmoid ramp-up of consistency weight (and of the learning rate with ``lr_schedule="sigmoid"``);
    Adam's beta2 and the EMA decay switch from their ramp-up values at this step."""
    ema_decay: float | None = None
    ema_decay_rampup: float | None = None
    logit_distance: float = 0.0
    logit_distance_classes: str = "mean"
    """"mean" averages the two-head distance over classes (PyTorch reference code); "sum" sums (TF code, Figure 4(e))."""
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The method's own options, under its name: ``--set vat.eps=2`` or a TOML table ``[vat]`` (each
    method's ``Options``, e.g. ``temporal-ensembling.alpha``; ``vat.eps``, the perturbation's norm, the VAT
    paper's 8.0 for CIFAR-10 with ZCA, depends on the input scale: tune it)."""
    ema_buffers: str = "own"
    """What the teacher does with BatchNorm statistics: keeps its "own" (from its own forward passes), "copy"
    copies the student's, "average" averages them like weights (``EMATeacher``'s ``buffers``)."""
    class_normalize: str = "labeled"
    """Classification cost divided by the "labeled" examples of the batch, or by the whole "batch" (the paper's code)."""
    # optimization
    steps: int = 150_000
    time_budget: float | None = None
    """Seconds the run may take (``--time 10m``): its step, an evaluation and a checkpoint are timed on
    its own data and network and ``steps`` is set to what fits; the schedules then follow ``steps``."""
    batch_size: int = 100
    labeled_per_batch: int | None = None
    """Labeled examples in each batch; -1 draws labeled and unlabeled alike ("varying")."""
    unlabeled_ratio: float = 0.0
    """FixMatch's mu: unlabeled images per labeled one in each batch, ``labeled_per_batch`` then being
    ``batch_size / (1 + mu)``; 0 leaves the split to ``labeled_per_batch``."""
    optimizer: str = "adam"
    lr: float = 0.003
    lr_schedule: str = "sigmoid"
    """"sigmoid": TF runs' ramp-up and ramp-down; "cosine": linear warm-up then cosine; "constant"."""
    rampdown_steps: int | None = None
    lr_warmup_steps: int = 0
    lr_warmup_start: float = 0.0
    cosine_steps: int = 0
    """Length of the cosine curve (the paper's ResNets stop before it reaches 0); 0 means ``steps``."""
    adam_beta1: float = 0.9
    adam_beta1_rampdown: float = 0.5
    adam_beta2: float = 0.999
    adam_beta2_rampup: float = 0.99
    adam_epsilon: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    # run
    seed: int = 0
    eval_every: int | None = None
    """Steps between evaluations. Auto: ``EVALUATIONS_PER_RUN`` evaluations per run; presets: the paper's 500."""
    checkpoint_every: int = 500
    checkpoint_seconds: float = 60.0
    """Checkpoints are also at least this many seconds apart (the last step always writes one): on a
    fast GPU 500 steps take about a second, and writing a 50 MB checkpoint that often would cost a
    large share of the run; a killed run loses at most this long, or ``checkpoint_every`` steps."""
    eval_batch_size: int = 500
    tensorboard: bool = False
    """Also write TensorBoard event files to ``RUN_DIR/tensorboard`` (needs ``pip install 'meanteacher[tensorboard]'``)."""
    device: str = "auto"
    precision: str | None = None
    """"fp32" or "bf16" (autocast). Auto: bf16 on a CPU with bf16 in hardware (AVX512_BF16 or AMX), where it
    is faster, fp32 elsewhere (emulated bf16 is slower); presets start from fp32."""
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    """Capture forward, backward, Adam step and EMA update in one CUDA graph (one GPU, Adam)."""
    device_schedules: bool = False
    """Serve the per-step values (learning rate, Adam betas, EMA decay, consistency weight) as 0-dim
    tensors on the device, with ``CapturableAdam``; always on with ``cuda_graphs``. The arithmetic is
    the same as with Python floats, to rounding."""
    deterministic: bool = False
    """On CUDA, deterministic cuDNN kernels; otherwise cuDNN times its kernels for the run's fixed
    shapes and keeps the fastest (``cudnn.benchmark``), which may differ between runs in the last bits."""
    sync_batchnorm: bool = False
    workers: int = 4
    image_size: int | None = None
    """Side of the square images an image folder is brought down to: in memory, at decode (shorter side to
    this, then a centre crop; smaller images are kept as they are); streamed, the crops' size. Auto:
    ``auto.FOLDER_IMAGE_SIZE`` in memory, ``auto.STREAMED_IMAGE_SIZE`` streamed (see ``auto.resolve_image_size``)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any, current: Any) -> Any:
    kind = OPTIONAL_FIELDS.get(name, type(current))
    if name in OPTIONAL_FIELDS and (value is None or str(value).lower() == "auto"):
        return None
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise MeanTeacherError(f"setting {name!r} must be a table of options")
        return dict(value)
    if isinstance(current, list):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise MeanTeacherError(f"setting {name!r} must be a list of paths, got {value!r}")
        return list(values)
    if kind is bool or isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True
        if str(value).lower() in ("false", "0", "no", "off"):
            return False
        raise MeanTeacherError(f"setting {name!r} must be true or false, got {value!r}")
    try:
        if kind is int and isinstance(value, str) and value.replace("_", "").lstrip("-").isdigit():
            return int(value.replace("_", ""))
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        return kind(value)
    except (TypeError, ValueError):
        raise MeanTeacherError(f"setting {name!r} must be a {kind.__name__}, got {value!r}") from None


def apply_settings(config: Config, settings: dict[str, Any], source: str) -> Config:
    """A copy of ``config`` with ``settings`` applied; unknown keys are an error naming ``source``."""
    values = config.to_dict()
    for name, value in settings.items():
        if name == "arch_options" and isinstance(value, dict):
            values[name] = dict(value)
            continue
        if name.startswith("arch_options."):
            values["arch_options"] = {**values["arch_options"], name.split(".", 1)[1]: _parse_scalar(value)}
            continue
        if name in SETTINGS_MOVED_TO_METHODS:
            method, option = SETTINGS_MOVED_TO_METHODS[name]
            raise MeanTeacherError(f"{source}: {name!r} is now an option of its method: {method}.{option}")
        if name == "streaming":
            raise MeanTeacherError(f"{source}: 'streaming' is now a data format: data_format = {STREAMED_FORMAT!r}")
        if name not in FIELDS and (isinstance(value, dict) or "." in name):  # a method's options
            method, _, option = name.partition(".")
            table = value if isinstance(value, dict) else {option: _parse_scalar(value)}
            values["method_options"] = {
                **values["method_options"],
                method: {**values["method_options"].get(method, {}), **table},
            }
            continue
        if name not in FIELDS:
            raise MeanTeacherError(f"{source}: unknown setting {name!r}")
        values[name] = _coerce(name, value, values[name])
    return Config(**values)


def _parse_scalar(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


STREAMED_FORMAT = "streamed-folder"
"""The data format that replaced the ``streaming`` flag (a run's ``config.toml`` may still hold the flag)."""

SETTINGS_MOVED_TO_METHODS = {
    "te_alpha": ("temporal-ensembling", "alpha"),
    "vat_eps": ("vat", "eps"),
    "vat_xi": ("vat", "xi"),
    "vat_power_iterations": ("vat", "power_iterations"),
    "entropy_weight": ("vat", "entropy_weight"),
}
"""Settings that became a method's options (the method named is one that has it; Mean Teacher + VAT has
the perturbation's too), by the name a run's ``config.toml`` may hold."""
