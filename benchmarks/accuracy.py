"""The paper's Table 2 at CPU scale on the shared CIFAR-10 copy: every method with the same step
budget, two seeds (different label sets) each. Finished runs are skipped and unfinished ones resumed,
so the script can be run again across sittings; ``meanteacher report`` then aggregates.

    python -m benchmarks.accuracy [--out runs/accuracy] [--seeds 0 1] [--only-seed S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from meanteacher.config import apply_settings, load_preset
from meanteacher.report import aggregate, read_summary
from meanteacher.train import train

from .common import SHARED_CIFAR, machine, today

MATRIX = {
    "cifar10-cpu-4000": ("supervised", "pi", "temporal-ensembling", "mean-teacher"),
    "cifar10-cpu-1000": ("supervised", "mean-teacher"),
}


def run_matrix(out: Path, seeds: list[int]) -> list[Path]:
    """Train (or resume, or skip) every run of the matrix; returns the run directories."""
    runs = []
    for seed in seeds:
        for preset, methods in MATRIX.items():
            for method in methods:
                run_dir = out / f"{preset}-{method}-s{seed}"
                runs.append(run_dir)
                if (run_dir / "summary.json").is_file():
                    continue
                config = apply_settings(load_preset(preset), {"method": method, "seed": seed, "dataset": str(SHARED_CIFAR)}, "benchmark")
                resume = (run_dir / "checkpoint.pt").is_file()
                print(f"{'resuming' if resume else 'training'} {run_dir.name}", flush=True)
                train(config, run_dir, resume=resume, progress=True)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/accuracy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--json", help="write the summaries and the table to this file")
    args = parser.parse_args(argv)
    runs = run_matrix(Path(args.out), args.seeds)
    summaries = [read_summary(run) for run in runs if (run / "summary.json").is_file()]
    table = aggregate(summaries)
    print(table, end="")
    if args.json:
        Path(args.json).write_text(json.dumps({"table": table, "runs": summaries, "machine": machine(), "date": today()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
