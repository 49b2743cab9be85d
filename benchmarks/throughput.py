"""Achieved FLOP/s of the paper-scale training step, and its share of the chip's bf16 peak.

    python -m benchmarks.throughput [--device cuda] [--repeats 7] [--json FILE]

The step is the ``cifar10-4000`` preset's (full-width ConvNet-13, batch 100, Mean Teacher) on a
synthetic CIFAR-sized dataset (timing does not depend on pixel values; no data files needed, so it
runs on a bare GPU machine). FLOPs per step are counted with ``torch.utils.flop_counter`` over one
real step: convolutions and matrix products, forward and backward, student and teacher. Each mode is
timed as the median over ``repeats`` blocks of steps, the device synchronised around each block.
Modes: fp32; bf16 autocast + channels_last; that + ``cuda_graphs`` (GPU only); that + ``compile``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from meanteacher.config.toml import load_preset
from meanteacher.data.dataset import Dataset
from meanteacher.run.train import Trainer

from .common import machine, markdown_table, today

METHODS = ("supervised", "pi", "mean-teacher", "temporal-ensembling")
MODES = {
    "fp32": {},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
    "bf16+channels_last+cuda_graphs": {"precision": "bf16", "channels_last": True, "cuda_graphs": True},
    "bf16+channels_last+compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def peak_bf16_tflops(device: torch.device) -> float | None:
    """Dense bf16 tensor-core peak of the GPU (NVIDIA datasheets), or None where not known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name or "H200" in name or "GH200" in name:
        return 756.0 if "PCIe" in name else 989.4
    if "A100" in name:
        return 312.0
    return None


def synthetic_cifar(seed: int = 0, images: int = 50_000) -> Dataset:
    """Random CIFAR-sized images (timing does not depend on pixel values), 10 classes."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(images) % 10
    return Dataset(
        "synthetic-cifar", pixels, labels, pixels[:1000].clone(), labels[:1000].clone(), [str(c) for c in range(10)]
    )


def make_trainer(dataset: Dataset, method: str, device: str, scratch: Path, **settings) -> Trainer:
    config = load_preset("cifar10-4000")
    config.dataset, config.method, config.device, config.normalize = "synthetic", method, device, "standardize"
    for name, value in settings.items():
        setattr(config, name, value)
    trainer = Trainer(config, scratch / f"{method}-{len(list(scratch.iterdir()))}", progress=False, dataset=dataset)
    trainer.training_step.method.model.train()
    return trainer


def flops_per_step(trainer: Trainer) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.step()
    return counter.get_total_flops()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(trainer: Trainer, repeats: int, block: int, warmup: int) -> float:
    for _ in range(warmup):
        trainer.step()
    times = []
    for _ in range(repeats):
        synchronize(trainer.device)
        start = time.perf_counter()
        for _ in range(block):
            trainer.step()
        synchronize(trainer.device)
        times.append((time.perf_counter() - start) / block)
    return statistics.median(times)


def measure(device_name: str, repeats: int, modes: list[str]) -> dict:
    device = torch.device(device_name)
    on_gpu = device.type == "cuda"
    dataset = synthetic_cifar()
    block, warmup = (20, 10) if on_gpu else (1, 2)
    results: dict = {
        "machine": machine(),
        "date": today(),
        "device": str(device),
        "repeats": repeats,
        "block": block,
        "peak_bf16_tflops": peak_bf16_tflops(device),
        "flops": {},
        "modes": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for method in METHODS:
            results["flops"][method] = flops_per_step(make_trainer(dataset, method, "cpu", scratch))
            print(f"{method:>20}: {results['flops'][method] / 1e9:.1f} GFLOP per step", flush=True)
        flops = results["flops"]["mean-teacher"]
        for mode in modes:
            if "cuda_graphs" in mode and not on_gpu:
                continue
            trainer = make_trainer(dataset, "mean-teacher", device_name, scratch, **MODES[mode])
            seconds = seconds_per_step(trainer, repeats, block, warmup)
            entry = {"step_ms": seconds * 1e3, "tflops": flops / seconds / 1e12}
            if results["peak_bf16_tflops"]:
                entry["share_of_peak"] = entry["tflops"] / results["peak_bf16_tflops"]
            results["modes"][mode] = entry
            print(f"{mode:>32}: {seconds * 1e3:9.2f} ms/step  {entry['tflops']:.3f} TFLOP/s", flush=True)
    return results


def table(results: dict) -> str:
    peak = results.get("peak_bf16_tflops")
    header = ["Mean Teacher step", "ms / step", "achieved TFLOP/s"] + (["share of bf16 peak"] if peak else [])
    rows = []
    for mode, entry in results["modes"].items():
        row = [mode, f"{entry['step_ms']:.2f}", f"{entry['tflops']:.3f}"]
        if peak:
            row.append(f"{entry['share_of_peak']:.1%}")
        rows.append(row)
    return markdown_table(header, rows)


def flops_table(results: dict) -> str:
    rows = [[method, f"{flops / 1e9:.1f}"] for method, flops in results["flops"].items()]
    return markdown_table(["method", "GFLOP per step (batch 100)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = measure(args.device, args.repeats, args.modes)
    results["command"] = " ".join(["python -m benchmarks.throughput", *(sys.argv[1:] if argv is None else argv)])
    print(flops_table(results))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
