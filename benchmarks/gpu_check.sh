#!/usr/bin/env bash
# The one-shot GPU check (benchmarks/gpu_check.py): runs the package from src/ on the PyTorch this
# machine has, with no install and no network. Arguments go to benchmarks.gpu_check (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
exec "${PYTHON:-python3}" -m benchmarks.gpu_check "$@"
