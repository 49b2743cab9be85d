"""Run directories written by earlier versions of the package (checkpoint format 2) still resume,
evaluate and export. ``tests/data/format2-run`` was written before the trainer was split into
``meanteacher.run``: 20 steps on the digits with a small MLP, checkpoint at step 20."""

import shutil
from pathlib import Path

import pytest
import torch

from meanteacher.config import apply_settings
from meanteacher.config.toml import to_toml
from meanteacher.inference import export_model, load_model, load_run
from meanteacher.run.rundir import CHECKPOINT_FORMAT, RunDirectory, load_checkpoint, read_metrics
from meanteacher.run.train import train

FIXTURE = Path(__file__).parent / "data" / "format2-run"


@pytest.fixture
def old_run(tmp_path):
    run_dir = tmp_path / "format2-run"
    shutil.copytree(FIXTURE, run_dir)
    return run_dir


def test_the_fixture_is_a_format_2_checkpoint():
    assert CHECKPOINT_FORMAT == 2
    assert load_checkpoint(FIXTURE / "checkpoint.pt")["step"] == 20


def test_an_old_run_is_read_in_todays_setting_names(old_run):
    config_file = old_run / "config.toml"
    assert 'bn_buffers = "own"' in config_file.read_text()  # the setting's earlier name
    config_file.write_text(config_file.read_text().replace('bn_buffers = "own"', 'bn_buffers = "copy"'))
    config = RunDirectory(old_run).read_config()
    assert config.ema_buffers == "copy" and config.student_view == "weak"  # as written, and as it ran


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("temporal-ensembling", {"alpha": 0.5}),
        ("vat", {"eps": 2.0, "xi": 1e-06, "power_iterations": 1, "entropy_weight": 0.25}),
        ("mean-teacher-vat", {"eps": 2.0, "xi": 1e-06, "power_iterations": 1}),  # no entropy term of its own
        ("mean-teacher", {}),
    ],
)
def test_an_old_runs_method_settings_become_its_methods_options(old_run, method, options):
    config_file = old_run / "config.toml"
    text = config_file.read_text()
    assert "te_alpha = 0.6" in text and "vat_eps = 8.0" in text  # the flat settings of the time
    text = text.replace('method = "mean-teacher"', f'method = "{method}"').replace("te_alpha = 0.6", "te_alpha = 0.5")
    config_file.write_text(
        text.replace("vat_eps = 8.0", "vat_eps = 2.0").replace("entropy_weight = 0.0", "entropy_weight = 0.25")
    )
    config = RunDirectory(old_run).read_config()
    assert config.method_options == ({method: options} if options else {})
    assert (f'["{method}"]' in to_toml(config)) == bool(options)  # written back under the method's name


def test_an_old_run_resumes_to_a_longer_end(old_run):
    before = (old_run / "metrics.jsonl").read_text()
    config = apply_settings(RunDirectory(old_run).read_config(), {"steps": 30}, "test")
    summary = train(config, old_run, resume=True, progress=False)
    assert summary["steps"] == 30
    assert [record["step"] for record in read_metrics(old_run / "metrics.jsonl")] == [10, 20, 30]
    assert (old_run / "metrics.jsonl").read_text().startswith(before)  # what the old version wrote is kept as it was
    assert load_checkpoint(old_run / "checkpoint.pt")["step"] == 30


def test_an_old_run_evaluates_and_exports(old_run, tmp_path):
    run = load_run(old_run)
    last = read_metrics(old_run / "metrics.jsonl")[-1]
    results = run.evaluate()
    for network in ("ema", "student"):  # the networks evaluated at step 20, read back from the checkpoint
        assert results[f"{network}_error"] == pytest.approx(last[f"{network}_error"], abs=0.01)
    weights, _ = export_model(old_run, tmp_path / "model.pt")
    images = run.normalizer(run.normalizer.prepare(torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)))
    with torch.no_grad():
        assert torch.equal(load_model(weights)(images), run.predictor(images))
