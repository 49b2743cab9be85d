"""EMA update cost on the full-width ConvNet-13: fused ``EMATeacher.update`` vs the reference code's
per-parameter ``mul_().add_()`` loop, side by side in one process.

    python -m benchmarks.ema [--repeats 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json

import torch

from meanteacher.models import ConvNet13
from meanteacher.teacher import EMATeacher

from .common import machine, median_seconds, today


def reference_update(teacher: torch.nn.Module, student: torch.nn.Module, alpha: float) -> None:
    """The reference implementation's EMA: a Python loop, two kernels per parameter."""
    for teacher_param, param in zip(teacher.parameters(), student.parameters()):
        teacher_param.data.mul_(alpha).add_(param.data, alpha=1 - alpha)


def measure(repeats: int, device: str = "cpu") -> dict:
    student = ConvNet13().to(device)
    fused = EMATeacher(student, decay=0.999)
    looped = EMATeacher(student, decay=0.999).module

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run_fused():
        fused.update(student, 10_000)
        sync()

    def run_loop():
        reference_update(looped, student, 0.999)
        sync()

    rounds = []
    for _ in range(5):  # interleave to share the machine's noise fairly
        rounds.append((median_seconds(run_loop, repeats // 5), median_seconds(run_fused, repeats // 5)))
    loop = sorted(r[0] for r in rounds)[2]
    fast = sorted(r[1] for r in rounds)[2]
    params = sum(p.numel() for p in student.parameters())
    return {
        "parameters": params,
        "tensors": len(list(student.parameters())),
        "loop_ms": 1e3 * loop,
        "fused_ms": 1e3 * fast,
        "speedup": loop / fast,
        "device": device,
        "machine": machine(),
        "date": today(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    result = measure(args.repeats, args.device)
    print(
        f"ConvNet-13 ({result['parameters']:,} parameters in {result['tensors']} tensors) on {result['device']}: "
        f"per-parameter loop {result['loop_ms']:.3f} ms, fused {result['fused_ms']:.3f} ms, {result['speedup']:.2f}x faster"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
