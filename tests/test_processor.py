"""Automatic settings that read the processor: with bf16 in hardware a run without a preset trains in
bf16, without it in fp32 (``MEANTEACHER_NATIVE_BF16`` forces either answer), and either way the run's
numbers come back the same when it is evaluated again or interrupted and resumed."""

import json

import pytest

from meanteacher.cli import main
from meanteacher.hardware import NATIVE_BF16_VARIABLE, cpu_has_native_bf16
from meanteacher.run.train import Trainer

from .helpers import tiny_config


def test_the_override_decides_whatever_the_processor_says(monkeypatch):
    for forced, expected in (("1", True), ("0", False)):
        monkeypatch.setenv(NATIVE_BF16_VARIABLE, forced)
        assert cpu_has_native_bf16() is expected


def _metrics(run_dir):
    return (run_dir / "metrics.jsonl").read_text().splitlines()


@pytest.mark.parametrize("native", ["0", "1"])
def test_a_run_reads_back_and_resumes_to_its_own_numbers_with_or_without_bf16_in_hardware(
    native, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(NATIVE_BF16_VARIABLE, native)
    config = tiny_config(precision=None, steps=16, eval_every=8, checkpoint_every=8)
    whole = Trainer(config, tmp_path / "whole", progress=False)
    assert whole.config.precision == ("bf16" if native == "1" else "fp32")
    summary = whole.run()
    (tmp_path / "parts").mkdir()
    interrupted = Trainer(config, tmp_path / "parts", progress=False)
    for _ in range(8):
        interrupted.step()
    interrupted.save_checkpoint()
    Trainer(config, tmp_path / "parts", resume=True, progress=False).run()
    assert _metrics(tmp_path / "parts")[-1] == _metrics(tmp_path / "whole")[-1]  # bit for bit
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "whole"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["precision"] == whole.config.precision
    assert (evaluated["ema_error"], evaluated["student_error"]) == (summary["ema_error"], summary["student_error"])


def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_warned_about_and_only_there(monkeypatch):
    import warnings

    from meanteacher.config import Config
    from meanteacher.config.auto import PrecisionWarning, resolve_auto

    def warned(native: str, precision: str | None, device_type: str) -> bool:
        monkeypatch.setenv(NATIVE_BF16_VARIABLE, native)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            resolve_auto(Config(dataset="digits", precision=precision), 10, False, 100, device_type)
        return any(issubclass(w.category, PrecisionWarning) for w in caught)

    assert warned("0", "bf16", "cpu")
    assert not warned("1", "bf16", "cpu") and not warned("0", "bf16", "cuda") and not warned("0", "fp32", "cpu")
    assert not warned("0", None, "cpu") and not warned("1", None, "cpu")  # automatic: fp32 without bf16 in hardware
