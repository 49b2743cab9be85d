"""The benchmark runner survives interruptions: a killed runner's lock does not block the next one."""

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
