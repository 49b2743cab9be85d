"""Decode-cache timing: first load of the CIFAR-10 JPEG archive (decoding 60,000 images) and the
cached second load, each in a fresh process with an empty cache folder.

    python -m benchmarks.data_load [--data PATH] [--json FILE]
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

from .common import SHARED_CIFAR, machine, today

LOAD = (
    "import sys, time; from meanteacher.data.sources import load_dataset; t = time.perf_counter(); "
    "load_dataset(sys.argv[1]); print(time.perf_counter() - t)"
)


def load_seconds(data: str, cache: str) -> float:
    """Seconds ``load_dataset`` takes in a fresh process (interpreter start not counted)."""
    env = {**os.environ, "MEANTEACHER_CACHE": cache}
    result = subprocess.run([sys.executable, "-c", LOAD, data], capture_output=True, text=True, env=env, check=True)
    return float(result.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_CIFAR))
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        first = load_seconds(args.data, cache)
        cached = [load_seconds(args.data, cache) for _ in range(3)]
        total = time.perf_counter() - start
    result = {"first_s": first, "cached_s": sorted(cached)[1], "machine": machine(), "date": today(), "wall_s": total}
    print(f"first load {first:.1f} s, cached load {result['cached_s']:.2f} s (median of 3)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
