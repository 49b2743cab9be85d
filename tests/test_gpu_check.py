"""The one-shot GPU check's plumbing, run on the CPU at tiny sizes (its --dry-run)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meanteacher.config.toml import load_config_file

ROOT = Path(__file__).resolve().parents[1]


def _check(*arguments):
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def test_every_phase_runs_and_writes_its_results(tmp_path):
    out = tmp_path / "out"
    result = _check("--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    phases = json.loads((out / "phases.json").read_text())
    assert {name: entry["status"] for name, entry in phases.items()} == dict.fromkeys(
        ["environment", "tests", "equality", "throughput", "cifar", "cpu-read", "compile"], "ok"
    )
    results = json.loads((out / "gpu.json").read_text())
    assert results["environment"]["bf16_matmul_tflops"] > 0
    assert results["tests"]["returncode"] == 0
    for method in ("mean-teacher", "supervised"):
        assert results[f"equality/{method}"]["twin_vs_default_eager_final"] < 1e-3  # same arithmetic, float32 rounding
        assert results[f"throughput/{method}/eager fp32"]["step_ms"] > 0
    assert 0 <= results["cifar/eager"]["ema_error"] <= 1
    assert results["cpu_read/eager"] == results["cifar/eager"]["subset"]  # the same networks and images, read back
    assert results["cpu_read/eager"]["images"] == 450  # the digits' whole test set: fewer than CPU_READ_IMAGES
    assert all(entry["estimate_s"] > 0 and entry["estimate"] for entry in phases.values())
    assert "estimated" in result.stdout.splitlines()[0]
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "log.txt", "phases.json", "pytest.txt", "runs.tar.gz"]
    assert result.stdout.rstrip().splitlines()[-1].startswith("cpu_read/eager")  # the table comes last


def test_paper_runs_resume_across_calls(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    steps = []
    for _ in range(2):
        result = _check("--paper", "--budget", "12", "--out", str(out), "--runs", str(runs))
        assert result.returncode == 0, result.stdout + result.stderr
        steps.append(json.loads((out / "gpu.json").read_text())["paper/mean-teacher"]["steps"])
    assert 0 < steps[0] < steps[1]  # the second call went on from the first call's checkpoint
    entry = json.loads((out / "gpu.json").read_text())["paper/mean-teacher"]
    planned = load_config_file(
        runs / "mean-teacher" / "config.toml"
    ).steps  # the run's own steps, not the paper's 150,000
    assert entry["full_run_hours_at_this_speed"] == pytest.approx(
        planned * entry["seconds"] / entry["steps"] / 3600, abs=0.01
    )
    assert (out / "metrics-mean-teacher.jsonl").is_file()


def test_a_phase_past_its_limit_is_killed_with_everything_it_started(tmp_path):
    """A phase that starts a process of its own and sleeps past its limit: the whole group goes, and its
    output so far is in the log."""
    import time

    from benchmarks.gpu_check import run_phase

    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; echo started; wait"
    started = time.perf_counter()
    with open(tmp_path / "log.txt", "w") as log:
        status = run_phase(["bash", "-c", script], 1.0, log)
    assert status == "timed out after 1 s" and time.perf_counter() - started < 10
    assert (tmp_path / "log.txt").read_text() == "started\n"
    child = int(pid_file.read_text())
    for _ in range(50):  # the killed child is reaped by whoever adopted it
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the phase's child {child} outlived it")
    with open(tmp_path / "log2.txt", "w") as log:
        assert run_phase(["bash", "-c", "exit 3"], 5.0, log) == "failed (exit 3)"
