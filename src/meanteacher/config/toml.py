"""Settings as text: ``--set`` pairs, durations (``--time``), the presets, and a run's ``config.toml`` written and read back
(in today's setting names, with what an older run did where it predates a setting)."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MeanTeacherError
from ..methods import method_class
from .schema import PAPER_SCHEDULE, SETTINGS_MOVED_TO_METHODS, STREAMED_FORMAT, Config, apply_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def parse_set_options(pairs: list[str]) -> dict[str, Any]:
    """``["lr=0.1", "arch_options.width=0.25"]`` -> ``{"lr": "0.1", "arch_options.width": "0.25"}``."""
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise MeanTeacherError(f"--set expects key=value, got {pair!r}")
        settings[name.strip()] = value.strip()
    return settings


DURATION_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"600"`` (seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise MeanTeacherError(f"--time {text!r}: expected a positive duration such as 90s, 10m or 1.5h")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


def _preset_files() -> dict[str, Any]:
    folder = resources.files("meanteacher.config").joinpath("presets")
    return {entry.name.removesuffix(".toml"): entry for entry in folder.iterdir() if entry.name.endswith(".toml")}


def list_presets() -> dict[str, str]:
    """Preset names with their one-line descriptions."""
    return {name: load_preset(name).description for name in sorted(_preset_files())}


def load_preset(name: str) -> Config:
    """The configuration of a named preset (a TOML file in ``meanteacher/config/presets``), on top of the
    paper's schedule (``PAPER_SCHEDULE``) rather than the run-derived defaults."""
    files = _preset_files()
    if name not in files:
        raise MeanTeacherError(f"unknown preset {name!r}; `meanteacher presets` lists them")
    return apply_settings(Config(**PAPER_SCHEDULE), tomllib.loads(files[name].read_text()), f"preset {name}")


SETTINGS_BEFORE_THEY_EXISTED = {"student_view": "weak"}
"""What a run whose ``config.toml`` predates a setting did: read back for such a run, the setting takes
this value rather than today's automatic one, so that resuming it goes on as it started."""

SETTINGS_RENAMED = {"bn_buffers": "ema_buffers"}
"""Settings a run's ``config.toml`` may hold under an earlier name, by today's name."""


def _in_todays_terms(settings: dict[str, Any]) -> dict[str, Any]:
    """A ``config.toml`` a run wrote, in today's setting names, with the values of settings it predates."""
    renamed = {SETTINGS_RENAMED.get(name, name): value for name, value in settings.items()}
    if renamed.pop("streaming", False):
        renamed["data_format"] = STREAMED_FORMAT
    moved = {name: renamed.pop(name) for name in SETTINGS_MOVED_TO_METHODS if name in renamed}
    try:
        method = method_class(renamed.get("method", Config.method))
    except ValueError:
        return {**SETTINGS_BEFORE_THEY_EXISTED, **renamed}  # apply_settings names the unknown method
    fields = {f.name for f in dataclasses.fields(method.Options)}
    options = {SETTINGS_MOVED_TO_METHODS[name][1]: value for name, value in moved.items()}
    options = {option: value for option, value in options.items() if option in fields}  # the method's own only
    if options:
        renamed[method.name] = {**options, **renamed.get(method.name, {})}
    return {**SETTINGS_BEFORE_THEY_EXISTED, **renamed}


def load_config_file(path: str | Path, run_record: bool = False) -> Config:
    """A configuration from a TOML file such as a run's ``config.toml`` (``run_record``: one a run wrote,
    read in today's terms: ``SETTINGS_RENAMED``, ``SETTINGS_BEFORE_THEY_EXISTED``)."""
    path = Path(path)
    try:
        settings = tomllib.loads(path.read_text())
    except OSError as error:
        raise MeanTeacherError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise MeanTeacherError(f"{path}: not valid TOML ({error})") from None
    if run_record:
        settings = _in_todays_terms(settings)
    return apply_settings(Config(), settings, str(path))


def _toml_value(value: Any) -> str:
    if value is None:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(str(item)) for item in value) + "]"
    return json.dumps(str(value))


def to_toml(config: Config) -> str:
    """The fully resolved configuration as TOML text: scalars first, then ``[arch_options]``, then the
    method's options under its name (every one, set or not), where it has any."""
    values = config.to_dict()
    options = values.pop("arch_options")
    values.pop("method_options")
    lines = [f"{name} = {_toml_value(value)}" for name, value in values.items()]
    lines.append("")
    lines.append("[arch_options]")
    lines += [f"{name} = {_toml_value(value)}" for name, value in options.items()]
    method = method_class(config.method)
    method_options = dataclasses.asdict(method.options(config))
    if method_options:
        lines += ["", f"[{json.dumps(method.name)}]"]
        lines += [f"{name} = {_toml_value(value)}" for name, value in method_options.items()]
    return "\n".join(lines) + "\n"
