"""A method and a data format each go in through one file: ``tests/plugin_method.py`` and
``tests/plugin_format.py`` define them outside the package, and the command line trains, resumes and
reports them by their ``package.module:Class`` reference or their registered names."""

import json

import pytest

from meanteacher import cli
from meanteacher.config.toml import load_config_file
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


FORMAT_REFERENCE = "tests.plugin_format:NpzArrays"


def _digits_as_npz(path):
    """The built-in digits written as the test-only format's file."""
    import numpy as np

    from meanteacher.data.formats.digits import load_digits

    digits = load_digits()
    np.savez(
        path,
        x_train=digits.train_images.squeeze(1).numpy(),
        y_train=digits.train_labels.numpy(),
        x_test=digits.test_images.squeeze(1).numpy(),
        y_test=digits.test_labels.numpy(),
    )
    return digits


def test_a_data_format_of_ones_own_trains_resumes_and_evaluates_through_the_command_line(tmp_path, capsys):
    _digits_as_npz(tmp_path / "digits.npz")
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "digits.npz"), "--data-format", FORMAT_REFERENCE, "--out", str(out), "--quiet"]
    assert cli.main(["train", *args, "--steps", "20", *ARGS[3:]]) == 0
    assert cli.main(["train", "--resume", str(out), "--steps", "40", "--quiet"]) == 0
    config = load_config_file(out / "config.toml", run_record=True)
    assert config.data_format == FORMAT_REFERENCE
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [20, 40]
    assert read_summary(out)["ema_error"] < 0.9  # it learned: below chance on 10 classes
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["ema_error"] == read_summary(out)["ema_error"]  # the run's own data, read by its format


def test_importing_the_file_registers_the_format_and_detection_finds_it(tmp_path, capsys):
    from meanteacher.data.formats import FORMATS, detect_format, format_class
    from tests.plugin_format import NpzArrays

    assert FORMATS["npz"] is NpzArrays is format_class(FORMAT_REFERENCE)
    digits = _digits_as_npz(tmp_path / "digits.npz")
    assert detect_format(tmp_path / "digits.npz") is NpzArrays  # before the image folder, which takes any file
    assert cli.main(["data", str(tmp_path / "digits.npz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "npz" and summary["train"] == len(digits.train_labels) and summary["test"] == 450


def test_another_format_under_a_taken_name_is_refused():
    from meanteacher.data.formats import FORMATS, DataFormat, register_format

    class Impostor(DataFormat):
        name = "cifar"

    with pytest.raises(ValueError, match="registered already"):
        register_format(Impostor)
    assert FORMATS["cifar"].__name__ == "CifarPickles"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--method", "nosuch", "unknown method 'nosuch'"),
        ("--method", "tests.plugin_method:Nowhere", "cannot import method"),
        ("--method", "meanteacher.losses:softmax_mse", "is not a subclass of meanteacher.methods.Method"),
        ("--data-format", "nosuch", "unknown data format 'nosuch'"),
        ("--data-format", "tests.plugin_format:Nowhere", "cannot import data format"),
        ("--data-format", "meanteacher.losses:softmax_mse", "is not a subclass of meanteacher.data.formats.DataFormat"),
    ],
)
def test_a_plug_in_that_cannot_be_found_is_one_line(tmp_path, capsys, flag, value, message):
    assert cli.main([*ARGS, "--steps", "2", flag, value, "--out", str(tmp_path / "run"), "--quiet"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("meanteacher: error: ") and message in error and "\n" not in error
    assert not (tmp_path / "run").exists()


def test_a_methods_own_option_is_set_under_its_name_and_recorded(tmp_path, capsys):
    out = tmp_path / "run"
    option = ["--set", "entropy-minimisation.on_labeled=false"]
    assert cli.main([*ARGS, "--steps", "20", "--method", REFERENCE, *option, "--out", str(out), "--quiet"]) == 0
    config = load_config_file(out / "config.toml", run_record=True)
    assert config.method_options == {"entropy-minimisation": {"on_labeled": False}}
    assert method_class(REFERENCE).options(config).on_labeled is False
    assert '["entropy-minimisation"]\non_labeled = false' in (out / "config.toml").read_text()
    assert cli.main(["train", "--resume", str(out), "--steps", "40", "--quiet"]) == 0
    assert read_summary(out)["steps"] == 40
    capsys.readouterr()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["--set", "vat.eps=2"],
            "options for 'vat' ([vat] or --set vat.*), but the run's method is entropy-minimisation",
        ),
        (["--set", "entropy-minimisation.nosuch=1"], "has no option 'nosuch' (its options: on_labeled)"),
        (["--set", "entropy-minimisation.on_labeled=3"], "option entropy-minimisation.on_labeled must be a bool"),
        (["--set", "vat_eps=2"], "'vat_eps' is now an option of its method: vat.eps"),
    ],
)
def test_a_methods_options_that_cannot_work_are_one_line(tmp_path, capsys, settings, message):
    args = [*ARGS, "--steps", "2", "--method", REFERENCE, *settings, "--out", str(tmp_path / "run"), "--quiet"]
    assert cli.main(args) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("meanteacher: error: ") and message in error and "\n" not in error
    assert not (tmp_path / "run").exists()
