"""``meanteacher demo`` as a user runs it, under several CPU kernel sets: its wall time and each
method's test error (mean ± std over the demo's label sets), so the README quotes what users see.

    python -m benchmarks.demo [--kernel-sets default ATEN_CPU_CAPABILITY=avx2 ...] [--json docs/bench/demo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meanteacher.report import mean_std
from meanteacher.run.rundir import read_summary

from .common import machine, today

KERNEL_SETS = ("default", "ATEN_CPU_CAPABILITY=avx2", "ONEDNN_MAX_CPU_ISA=AVX2")


def run_demo(setting: str) -> dict:
    """One ``meanteacher demo`` in a fresh process under ``setting`` ("default" or NAME=VALUE)."""
    env = dict(os.environ)
    if setting != "default":
        name, value = setting.split("=", 1)
        env[name] = value
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "demo"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "meanteacher", "demo", "--out", str(out), "--quiet"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
        errors: dict[str, list[float]] = {}
        for run in sorted(p for p in out.iterdir() if p.is_dir()):
            summary = read_summary(run)
            errors.setdefault(summary["method"], []).append(summary["ema_error"])
    return {
        "seconds": round(seconds, 1),
        "errors": errors,
        "mean_std": {method: [round(100 * v, 2) for v in mean_std(values)] for method, values in errors.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel-sets", nargs="+", default=list(KERNEL_SETS))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    results = {}
    for setting in args.kernel_sets:
        results[setting] = run_demo(setting)
        shown = ", ".join(f"{m} {v[0]:.1f} ± {v[1]:.1f} %" for m, v in results[setting]["mean_std"].items())
        print(f"{setting}: {shown} ({results[setting]['seconds']:.0f} s)", flush=True)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"kernel_sets": results, "machine": machine(), "date": today()}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
