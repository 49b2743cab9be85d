"""A run's settings: what they are (``schema``), what cannot work (``checks``), the automatic values
(``auto``), and settings as text: ``--set`` pairs, the presets and a run's ``config.toml`` (``toml``)."""

from .schema import AUTO_FIELDS, PAPER_SCHEDULE, SETTINGS_MOVED_TO_METHODS, STREAMED_FORMAT, Config, apply_settings

__all__ = ["AUTO_FIELDS", "PAPER_SCHEDULE", "SETTINGS_MOVED_TO_METHODS", "STREAMED_FORMAT", "Config", "apply_settings"]
