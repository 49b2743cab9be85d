"""A method goes in through one file: ``tests/plugin_method.py`` defines one outside the package, and the
command line trains, resumes and reports it by its ``package.module:Class`` reference or its registered name."""

import pytest

from meanteacher import cli
from meanteacher.config import load_config_file
from meanteacher.methods import METHODS, Method, method_class, register_method
from meanteacher.report import ema_name
from meanteacher.run.rundir import read_metrics, read_summary

REFERENCE = "tests.plugin_method:EntropyMinimisation"
ARGS = ["train", "--data", "digits", "--labels", "50", "--set", "arch_options.pools=1", "--set", "eval_every=20"]


def test_a_method_of_ones_own_trains_resumes_and_reports_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--steps", "20", "--method", REFERENCE, "--out", str(out), "--quiet"]) == 0
    assert cli.main(["train", "--resume", str(out), "--steps", "40", "--quiet"]) == 0
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [20, 40]
    assert all("entropy_cost" in r and "consistency_cost" not in r for r in records)  # its own cost, logged
    config = load_config_file(out / "config.toml", run_record=True)
    assert config.method == REFERENCE
    assert config.consistency == 1.0  # its trait: a cross-entropy-like cost gets the automatic weight 1
    assert read_summary(out)["ema_error"] < 0.9  # it learned: below chance on 10 classes
    assert ema_name(config.method) == "EMA"  # its EMA is not a teacher
    capsys.readouterr()


def test_importing_the_file_registers_the_method_by_its_name(tmp_path):
    from tests.plugin_method import EntropyMinimisation

    assert METHODS["entropy-minimisation"] is EntropyMinimisation is method_class(REFERENCE)
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--steps", "20", "--method", "entropy-minimisation", "--out", str(out), "--quiet"]) == 0
    assert load_config_file(out / "config.toml", run_record=True).method == "entropy-minimisation"


def test_another_class_under_a_taken_name_is_refused():
    class Impostor(Method):
        name = "mean-teacher"

    with pytest.raises(ValueError, match="registered already"):
        register_method(Impostor)
    assert METHODS["mean-teacher"].__name__ == "MeanTeacher"


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("nosuch", "unknown method 'nosuch'"),
        ("tests.plugin_method:Nowhere", "cannot import method"),
        ("meanteacher.losses:softmax_mse", "is not a subclass of meanteacher.methods.Method"),
    ],
)
def test_a_method_that_cannot_be_found_is_one_line(tmp_path, capsys, method, message):
    assert cli.main([*ARGS, "--steps", "2", "--method", method, "--out", str(tmp_path / "run"), "--quiet"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("meanteacher: error: ") and message in error and "\n" not in error
    assert not (tmp_path / "run").exists()
