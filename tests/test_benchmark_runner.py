"""The benchmark runner survives interruptions: a killed runner's lock does not block the next one."""

import dataclasses
import os
import subprocess
import sys

from benchmarks.runner import _claim


def test_a_lock_of_a_live_process_holds_and_a_dead_ones_is_taken_over(tmp_path):
    run = tmp_path / "run"
    assert _claim(run)
    assert (run / ".lock").read_text() == str(os.getpid())
    assert not _claim(run)  # held by a live process (this one)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".lock").write_text(ended.stdout.strip())  # a runner that was killed
    assert _claim(run)
    assert (run / ".lock").read_text() == str(os.getpid())


def test_the_cpu_table_presets_are_the_recipe_the_benchmarks_train():
    import json
    from pathlib import Path

    from benchmarks.accuracy import LEARNING_RATES, STEPS
    from benchmarks.defaults import DEFAULT_LR, recipe_job
    from meanteacher.config.toml import load_preset

    recorded = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bench" / "accuracy.json").read_text())
    for labels, steps in STEPS.items():
        preset = load_preset(f"cifar10-cpu-{labels}").to_dict()
        assert preset["lr"] in LEARNING_RATES and preset["lr"] != DEFAULT_LR  # a rate of the grid: the tuned one
        assert preset["lr"] == recorded["chosen_lr"][f"{labels}-mean-teacher"]  # the rate chosen on validation
        recipe = recipe_job(labels, steps, "mean-teacher", 0, lr=preset["lr"]).config.to_dict()
        differing = {name for name in preset if preset[name] != recipe[name]}
        assert differing == {"description", "dataset"}, differing


def test_the_learning_rate_is_chosen_on_validation_error_and_the_crossing_is_where_the_teacher_stays_ahead():
    from benchmarks.accuracy import LEARNING_RATES, STEPS, chosen_lr, crossing_step
    from benchmarks.defaults import recipe_job

    errors = dict(zip(LEARNING_RATES, (0.40, 0.35, 0.38)))
    summaries = {
        recipe_job(1000, STEPS[1000], "supervised", 0, lr=lr).name: {"validation_ema_error": e, "ema_error": 0.1}
        for lr, e in errors.items()
    }
    assert chosen_lr(summaries, 1000, "supervised") == LEARNING_RATES[1]
    del summaries[recipe_job(1000, STEPS[1000], "supervised", 0, lr=LEARNING_RATES[0]).name]
    assert chosen_lr(summaries, 1000, "supervised") is None  # the grid is not finished
    steps = [100, 200, 300, 400]
    supervised = [[50, 40, 35, 34], [52, 42, 37, 36]]
    teacher = [[55, 39, 38, 30], [57, 39, 36, 30]]  # ahead at 200, behind at 300 (37 vs 36 on average), ahead after
    assert crossing_step(supervised, teacher, steps) == 400
    assert crossing_step(supervised, [[60] * 4, [60] * 4], steps) is None


def test_finished_runs_survive_the_machine_through_an_archive(tmp_path):
    from benchmarks.runner import archive, restore

    out = tmp_path / "runs"
    for name, finished in (("a", True), ("b", True), ("c", False)):
        (out / name).mkdir(parents=True)
        (out / name / "metrics.jsonl").write_text(f'{{"step": 1, "name": "{name}"}}\n')
        (out / name / "checkpoint.pt").write_bytes(b"large")
        if finished:
            (out / name / "summary.json").write_text(f'{{"run": "{name}"}}')
    assert archive(out, tmp_path / "record.tar.gz") == 2
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "b").mkdir(parents=True)
    (elsewhere / "b" / "summary.json").write_text('{"run": "b, trained here"}')
    assert restore(tmp_path / "record.tar.gz", elsewhere) == 1
    assert (elsewhere / "a" / "summary.json").read_text() == '{"run": "a"}'
    assert (elsewhere / "a" / "metrics.jsonl").is_file() and not (elsewhere / "a" / "checkpoint.pt").exists()
    assert (elsewhere / "b" / "summary.json").read_text() == '{"run": "b, trained here"}'  # never overwritten
    assert not (elsewhere / "c").exists()  # unfinished runs are not archived


def test_an_unfinished_run_goes_on_elsewhere_from_an_archive_as_if_never_stopped(tmp_path, monkeypatch):
    import pytest

    from benchmarks.runner import _train_one, archive, restore
    from meanteacher.run.train import Trainer
    from tests.helpers import tiny_config

    config = tiny_config(steps=12, eval_every=4, checkpoint_every=4).to_dict()
    assert _train_one(config, str(tmp_path / "whole" / "run"), 1) is not None
    step = Trainer.step

    def killed_after_step_six(trainer):
        if trainer.global_step == 6:
            raise KeyboardInterrupt
        return step(trainer)

    monkeypatch.setattr(Trainer, "step", killed_after_step_six)
    with pytest.raises(KeyboardInterrupt):
        _train_one(config, str(tmp_path / "here" / "run"), 1)
    monkeypatch.undo()
    assert archive(tmp_path / "here", tmp_path / "record.tar.gz") == 0  # unfinished: only with unfinished=True
    assert archive(tmp_path / "here", tmp_path / "record.tar.gz", unfinished=True) == 1
    assert restore(tmp_path / "record.tar.gz", tmp_path / "elsewhere") == 1
    steps_trained = []
    monkeypatch.setattr(Trainer, "step", lambda trainer: steps_trained.append(trainer.global_step) or step(trainer))
    assert _train_one(config, str(tmp_path / "elsewhere" / "run"), 1)["steps"] == 12
    assert steps_trained == list(range(4, 12))  # from the checkpoint at step 4, not from the start
    whole, resumed = (tmp_path / place / "run" / "metrics.jsonl" for place in ("whole", "elsewhere"))
    assert resumed.read_text() == whole.read_text()  # bit for bit, the evaluation at step 4 included


def test_the_cpu_vat_presets_are_the_runs_the_vat_benchmark_trains_and_eps_is_chosen_on_validation():
    import json
    from pathlib import Path

    from benchmarks.vat import EPS_GRID, LABELS, VAT_METHODS, chosen_eps, vat_job
    from meanteacher.config.toml import load_preset

    table_lr = load_preset(f"cifar10-cpu-{LABELS}").lr
    recorded = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bench" / "vat.json").read_text())
    for method in VAT_METHODS:
        preset = load_preset(f"cifar10-cpu-{LABELS}-{method}").to_dict()
        eps = preset["method_options"][method]["eps"]
        assert eps == recorded["chosen_eps"][method]  # the norm the benchmark chose on validation
        recipe = vat_job(method, eps, 0, table_lr).config.to_dict()
        differing = {name for name in preset if preset[name] != recipe[name]}
        assert differing == {"description", "dataset"}, differing
    errors = dict(zip(EPS_GRID, (0.47, 0.45, 0.45, 0.46)))
    tuning = {
        vat_job("vat", eps, 0, table_lr).name: {"validation_ema_error": e, "ema_error": 0.9}
        for eps, e in errors.items()
    }
    assert chosen_eps(tuning, "vat", table_lr) == EPS_GRID[1]
    assert chosen_eps(tuning, "vat", 0.0015) is None  # the grid at another learning rate is not these runs
    assert chosen_eps(tuning, "mean-teacher-vat", table_lr) is None  # its grid is not run yet


def test_the_vat_runs_take_the_learning_rate_the_accuracy_benchmark_chose_for_mean_teacher(tmp_path):
    import json

    from benchmarks import accuracy, vat
    from benchmarks.defaults import DEFAULT_LR

    assert vat.mean_teacher_lr(tmp_path) == DEFAULT_LR  # nothing tuned yet
    grid = [
        job for job in accuracy.tune_jobs() if job.config.labels == vat.LABELS and job.config.method == "mean-teacher"
    ]
    for job, error in zip(grid, (0.50, 0.47, 0.45)):
        (tmp_path / job.name).mkdir()
        (tmp_path / job.name / "summary.json").write_text(json.dumps({"validation_ema_error": error, "ema_error": 0.9}))
    assert vat.mean_teacher_lr(tmp_path) == grid[2].config.lr != DEFAULT_LR
    mean_teacher_runs = vat.table_jobs([0, 1], {"vat": 4.0}, grid[2].config.lr)["mean-teacher"]
    assert [job.config.lr for job in mean_teacher_runs] == [grid[2].config.lr] * 2


def test_finished_runs_carry_their_jobs_fields_and_ties_go_to_the_smaller_value(tmp_path):
    import json

    from benchmarks.defaults import choose_jobs, recipe_job
    from benchmarks.runner import choose_on_validation, finished

    jobs = [recipe_job(1000, 1500, "mean-teacher", 2, lr=0.006), choose_jobs([0])[0]]
    for job in jobs:
        (tmp_path / job.name).mkdir()
        (tmp_path / job.name / "summary.json").write_text(json.dumps({"ema_error": 0.4}))
    runs = finished(jobs, tmp_path)
    assert runs[jobs[0].name] == {
        "ema_error": 0.4,
        "phase": "verify",
        "labels": 1000,
        "steps": 1500,
        "method": "mean-teacher",
        "seed": 2,
        "lr": 0.006,
    }
    assert runs[jobs[1].name]["consistency"] == jobs[1].config.consistency and runs[jobs[1].name]["phase"] == "choose"
    assert (
        choose_on_validation(
            {2.0: {"validation_ema_error": 0.3}, 1.0: {"validation_ema_error": 0.3}, 4.0: {"validation_ema_error": 0.5}}
        )
        == 1.0
    )
    assert choose_on_validation({1.0: {"validation_ema_error": 0.3}, 2.0: None}) is None


def test_a_run_killed_before_its_first_checkpoint_is_begun_again(tmp_path):
    import json

    from benchmarks.runner import _train_one

    from .helpers import tiny_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("steps = 7\n")  # what a killed run leaves: its settings and a few evaluations
    (run / "metrics.jsonl").write_text('{"step": 5, "ema_error": 0.5}\n')
    summary = _train_one(tiny_config(steps=6, eval_every=3).to_dict(), str(run), threads=1)
    assert summary is not None and summary["steps"] == 6
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [3, 6]
    assert not (run / ".lock").exists()


def test_the_strong_table_compares_unfinished_cells_at_the_last_step_all_their_runs_reached(tmp_path):
    import json

    from benchmarks.strong import report, sweep

    table = sweep([0, 1], data="elsewhere.tar.gz").table({"supervised": (0.5, 0.0), "mean-teacher": (0.5, 10.0)})
    assert all(job.config.dataset == "elsewhere.tar.gz" for job in table)
    assert {job.name for job in table} == {
        job.name for job in sweep([0, 1]).table({"supervised": (0.5, 0.0), "mean-teacher": (0.5, 10.0)})
    }
    offsets = {
        ("supervised", "weak"): 4.0,
        ("supervised", "strong"): 2.0,
        ("mean-teacher", "weak"): 3.0,
        ("mean-teacher", "strong"): 0.0,
    }
    for job in table:
        if (job.fields["labels"], job.fields["steps"]) != (1000, 5000):
            continue
        view = job.fields.get("view", "weak")
        error = 30.0 + offsets[job.fields["method"], view] + job.fields["seed"]  # percent
        stopped = view == "strong" and job.fields["seed"] == 1  # killed after its evaluation at step 4000
        steps = range(500, 4500 if stopped else 5500, 500)
        run = tmp_path / job.name
        run.mkdir()
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "ema_error": (error + (5000 - s) / 1000) / 100}) + "\n" for s in steps)
        )
        if not stopped:
            (run / "summary.json").write_text(json.dumps({"ema_error": error / 100}))
    runs = {
        job.name: {"ema_error": json.loads((tmp_path / job.name / "summary.json").read_text())["ema_error"]}
        for job in table
        if (tmp_path / job.name / "summary.json").is_file()
    }
    cell = report(runs, table, tmp_path)["1000/5000"]
    assert cell["gains_of_strong_mean_teacher"]["supervised/strong"]["label_sets"] == 1  # seed 0 only finished both
    at = cell["at_step"]
    assert at["step"] == 4000
    assert at["rows"]["mean-teacher/strong"]["seeds"] == {0: 31.0, 1: 32.0}
    gain = at["gains_of_strong_mean_teacher"]["supervised/weak"]
    assert gain["label_sets"] == 2 and gain["gain"][0] == 4.0
    assert "at_step" not in report(runs, table, tmp_path)["1000/1500"]  # nothing of that cell was started


def test_a_rewritten_result_keeps_the_notes_written_beside_it(tmp_path):
    import json

    from benchmarks.common import write_result

    path = tmp_path / "result.json"
    write_result(path, {"cells": [1], "notes": "a first draft"})
    path.write_text(json.dumps({"cells": [1], "notes": "the reading"}))
    write_result(path, {"cells": [2]})
    assert json.loads(path.read_text()) == {"cells": [2], "notes": "the reading"}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_a_photo_recipe_is_compared_with_supervised_only_at_its_own_view_and_labels():
    from benchmarks.photo_recipe import baselines

    assert baselines("strong-student") == {"supervised/strong-student", "supervised/weak-student"}
    assert baselines("mostly-unlabeled") == {
        "supervised/strong-student",
        "supervised/weak-student",
        "mean-teacher/strong-student",
    }
    assert baselines("strong-student-250-labels") == {"supervised/strong-student-250-labels"}


def test_the_pseudo_label_table_holds_finished_runs_and_says_where_the_unfinished_ones_are(tmp_path):
    import json

    from benchmarks.document import _unfinished_runs
    from benchmarks.pseudo import FULL, report, rows, run_dirs

    choices, groups = {FULL: 0.8}, ("full-labeled-batch",)
    last_step = {  # (row, label set) -> the last evaluation reached; absent: finished at 5000
        ("mean-teacher (pseudo-labels), 100 + 100", 1): 4000,
        ("fixmatch, 100 + 100", 0): 1000,
        ("fixmatch, 100 + 100", 1): 0,  # not begun
    }
    offsets = {"supervised": 2.0, "mean-teacher (pseudo-labels), 100 + 100": 0.0, "fixmatch, 100 + 100": 4.0}
    for seed in (0, 1):
        for row, job in rows(1000, 5000, seed, choices, groups, "fp32").items():
            end = last_step.get((row, seed), 5000)
            if not end:
                continue
            run = tmp_path / job.name
            run.mkdir()
            error = 30.0 + offsets[row] + seed  # percent, at the end of the run
            (run / "metrics.jsonl").write_text(
                "".join(
                    json.dumps({"step": s, "ema_error": (error + (5000 - s) / 1000) / 100}) + "\n"
                    for s in range(500, end + 1, 500)
                )
            )
            if end == 5000:
                (run / "summary.json").write_text("{}")
    cell = report(*run_dirs(1000, 5000, [0, 1], choices, tmp_path, groups, "fp32"))
    table, still = cell["table"], cell["unfinished"]
    assert set(table) == {"supervised", "mean-teacher (pseudo-labels), 100 + 100"}  # FixMatch finished nowhere
    mean_teacher = table["mean-teacher (pseudo-labels), 100 + 100"]
    assert mean_teacher["per_label_set"] == {0: 30.0}
    assert mean_teacher["gain_over_supervised"]["values"] == [2.0]  # paired on label set 0 only
    assert {row: sorted(by_seed) for row, by_seed in still.items()} == {
        "mean-teacher (pseudo-labels), 100 + 100": [1],
        "fixmatch, 100 + 100": [0],
    }
    assert still["fixmatch, 100 + 100"][0][-1] == (1000, 38.0)
    entry = json.loads(json.dumps(cell))  # as docs/bench/pseudo.json holds it
    assert _unfinished_runs(entry) == (
        "Still training, not in the table: fixmatch, 100 + 100 on label set 0 at step 1000: 38.0 % (supervised-only "
        "36.0 %); mean-teacher (pseudo-labels), 100 + 100 on label set 1 at step 4000: 32.0 % (supervised-only 34.0 %)."
        "\n\n"
    )


def test_the_pseudo_label_table_can_add_fixmatch_with_its_labeled_images_on_the_strong_view():
    from benchmarks.pseudo import rows

    table = rows(1000, 5000, 0, {}, ("full-labeled-batch", "strong-labels"), "fp32")
    paper, strong = table["fixmatch, 100 + 100"], table["fixmatch, labeled on the strong view, 100 + 100"]
    assert paper.name == "pseudo-1000-5000-fixmatch-0.95-b200-fp32-s0"  # the runs trained before keep their name
    assert strong.name == "pseudo-1000-5000-fixmatch-0.95-strong-labels-b200-fp32-s0"
    assert paper.config.method_options == {}
    assert strong.config.method_options == {"fixmatch": {"labeled_view": "strong"}}
    assert dataclasses.replace(strong.config, method_options={}) == paper.config  # nothing else differs


def test_a_budget_measured_in_bf16_and_in_fp32_keeps_both_tables():
    from benchmarks.document import pseudo_section
    from benchmarks.pseudo import cell_key

    assert cell_key(250, 1500, "bf16") == "250/1500"  # the cells measured before keep their key
    assert cell_key(250, 1500, "fp32") == "250/1500/fp32"

    def row(*label_sets):
        curves = {seed: [(750, 60.0 + seed), (1500, 55.0 + seed)] for seed in label_sets}
        return {"curves": curves, "error": [55.0, 0.0], "per_label_set": {seed: 55.0 + seed for seed in label_sets}}

    table = {"supervised": row(0, 1), "fixmatch": row(0)}
    cell = {"machine": "m", "date": "d", "tuning": {}, "choices": {}, "table": table}
    result = {
        "cells": {
            cell_key(250, 1500, precision): {**cell, "command": f"run {precision}", "precision": precision}
            for precision in ("bf16", "fp32")
        }
    }
    text = pseudo_section(result)
    assert "**250 labels, 1500 steps.** Command: `run bf16`" in text
    assert "**250 labels, 1500 steps, fp32.** Command: `run fp32`" in text
    assert "(pseudo-250-1500.png)" in text and "(pseudo-250-1500-fp32.png)" in text
    assert "| step | supervised | fixmatch (1 of 2 label sets) |" in text  # a mean over fewer label sets says so
    assert "| 1500 | 55.5 | 55.0 |" in text
