"""Run configuration: one flat dataclass, TOML presets, ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import MeanTeacherError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class Config:
    """Everything that defines a run. Step counts are optimizer steps; defaults follow the paper's
    TensorFlow ConvNet runs (Adam 0.003, 40k-step ramp-up, 25k-step ramp-down)."""

    description: str = ""
    # data
    dataset: str = ""
    test_data: str = ""
    labels: int = 0
    """Labeled examples, balanced across classes; 0 keeps every training label."""
    label_file: str = ""
    validation_per_class: int = 0
    extra_unlabeled: int = 0
    """SVHN ``extra`` images added to the unlabeled pool: 0 none, -1 all."""
    normalize: str = "standardize"
    translate: int = 2
    flip: bool = False
    fill: str = "reflect"
    # model
    arch: str = "convnet13"
    arch_options: dict[str, Any] = field(default_factory=dict)
    # method
    method: str = "mean-teacher"
    consistency: float = 100.0
    consistency_type: str = "mse"
    consistency_on_labeled: bool = True
    rampup_steps: int = 40_000
    """Sigmoid ramp-up of consistency weight (and of the learning rate with ``lr_schedule="sigmoid"``);
    Adam's beta2 and the EMA decay switch from their ramp-up values at this step."""
    ema_decay: float = 0.999
    ema_decay_rampup: float = 0.99
    logit_distance: float = 0.0
    te_alpha: float = 0.6
    bn_buffers: str = "own"
    class_normalize: str = "batch"
    # optimization
    steps: int = 150_000
    batch_size: int = 100
    labeled_per_batch: int = -1
    """Labeled examples in each batch; -1 draws labeled and unlabeled alike ("varying")."""
    optimizer: str = "adam"
    lr: float = 0.003
    lr_schedule: str = "sigmoid"
    """"sigmoid": TF runs' ramp-up and ramp-down; "cosine": linear warm-up then cosine; "constant"."""
    rampdown_steps: int = 25_000
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
    eval_every: int = 500
    checkpoint_every: int = 500
    eval_batch_size: int = 500
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    """Capture forward, backward, Adam step and EMA update in one CUDA graph (one GPU, Adam)."""
    sync_batchnorm: bool = False
    workers: int = 4
    streaming: bool = False
    """Decode and augment each image in DataLoader workers (Appendix B.2.2) instead of holding the set in memory."""
    image_size: int = 224

    def validate(self) -> None:
        """Raise ``MeanTeacherError`` naming the first setting that cannot work."""
        from .methods import METHODS

        choices = {
            "method": tuple(METHODS),
            "optimizer": ("adam", "sgd"),
            "lr_schedule": ("sigmoid", "cosine", "constant"),
            "precision": ("fp32", "bf16"),
            "normalize": ("standardize", "zca", "none"),
            "fill": ("reflect", "zero"),
            "bn_buffers": ("own", "copy", "average"),
            "class_normalize": ("batch", "labeled"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise MeanTeacherError(f"unknown {name} {getattr(self, name)!r}; expected one of: {', '.join(allowed)}")
        if not self.dataset:
            raise MeanTeacherError("no dataset: pass --data PATH (or 'digits' for the built-in one)")
        positive = ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_batch_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise MeanTeacherError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("ema_decay", "ema_decay_rampup", "te_alpha"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise MeanTeacherError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not -1 <= self.labeled_per_batch <= self.batch_size:
            raise MeanTeacherError(f"labeled_per_batch must be -1 or in [0, batch_size={self.batch_size}]")
        if self.labels < 0:
            raise MeanTeacherError(f"labels must be >= 0 (0 keeps every label), got {self.labels}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise MeanTeacherError(f"unknown device {self.device!r}; expected auto, cpu or cuda[:N]")
        if self.cuda_graphs and (self.optimizer != "adam" or self.compile):
            raise MeanTeacherError("cuda_graphs works with optimizer 'adam' (capturable) and without compile")
        from .losses import consistency_cost

        try:
            consistency_cost(self.consistency_type)
        except ValueError as error:
            raise MeanTeacherError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any, current: Any) -> Any:
    kind = type(current)
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise MeanTeacherError(f"setting {name!r} must be a table of options")
        return dict(value)
    if isinstance(current, bool):
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


def parse_set_options(pairs: list[str]) -> dict[str, Any]:
    """``["lr=0.1", "arch_options.width=0.25"]`` -> ``{"lr": "0.1", "arch_options.width": "0.25"}``."""
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise MeanTeacherError(f"--set expects key=value, got {pair!r}")
        settings[name.strip()] = value.strip()
    return settings


def _preset_files() -> dict[str, Any]:
    folder = resources.files("meanteacher").joinpath("presets")
    return {entry.name.removesuffix(".toml"): entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def list_presets() -> dict[str, str]:
    """Preset names with their one-line descriptions."""
    return {name: load_preset(name).description for name in sorted(_preset_files())}


def load_preset(name: str) -> Config:
    """The configuration of a named preset (a TOML file in ``meanteacher/presets``)."""
    files = _preset_files()
    if name not in files:
        raise MeanTeacherError(f"unknown preset {name!r}; `meanteacher presets` lists them")
    return apply_settings(Config(), tomllib.loads(files[name].read_text()), f"preset {name}")


def load_config_file(path: str | Path) -> Config:
    """A configuration from a TOML file such as a run's ``config.toml``."""
    path = Path(path)
    try:
        settings = tomllib.loads(path.read_text())
    except OSError as error:
        raise MeanTeacherError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise MeanTeacherError(f"{path}: not valid TOML ({error})") from None
    return apply_settings(Config(), settings, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def to_toml(config: Config) -> str:
    """The fully resolved configuration as TOML text (scalars first, then ``[arch_options]``)."""
    values = config.to_dict()
    options = values.pop("arch_options")
    lines = [f"{name} = {_toml_value(value)}" for name, value in values.items()]
    lines.append("")
    lines.append("[arch_options]")
    lines += [f"{name} = {_toml_value(value)}" for name, value in options.items()]
    return "\n".join(lines) + "\n"
