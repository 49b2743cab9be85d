"""Write docs/benchmarks.md from the JSON results the benchmarks saved in docs/bench/.

    python -m benchmarks.ema --json docs/bench/ema.json
    python -m benchmarks.speed --json docs/bench/speed.json
    python -m benchmarks.accuracy --json docs/bench/accuracy.json
    python -m benchmarks.data_load --json docs/bench/data_load.json
    python -m benchmarks.throughput --json docs/bench/throughput.json
    python -m benchmarks.defaults --json docs/bench/defaults.json
    python -m benchmarks.demo --json docs/bench/demo.json
    python -m benchmarks.document
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .speed import table as speed_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESULTS = DOCS / "bench"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _stamp(result: dict, command: str) -> str:
    return f"Command: `{command}`. Machine: {result['machine']}. Date: {result['date']}.\n"


def accuracy_section(result: dict) -> str:
    text = _stamp(result, "python -m benchmarks.accuracy --json docs/bench/accuracy.json") + "\n"
    text += (
        "Presets `cifar10-cpu-4000` and `cifar10-cpu-1000`: ConvNet-13 at width 0.25, 1,200 steps of 100 images "
        "for every method (50 labeled + 50 unlabeled for the semi-supervised methods, 100 labeled for "
        "supervised-only; bf16 autocast on the CPU), two seeds, so two different label sets, per row. "
        "Test error in %, mean ± standard deviation over the seeds; the teacher column exists only for Mean Teacher. "
        "The images are the shared JPEG copy of CIFAR-10 (quality 75), so absolute errors are not the "
        "paper's; compare the methods with each other. Each run took the time in `seconds` of its summary "
        "(two runs shared the 2 cores, one thread each).\n\n"
    )
    if not any("ema_error" in run for run in result["runs"]):
        text += (
            "**Measured before every method was evaluated on EMA weights.** In this table only Mean Teacher has an "
            "EMA network (its teacher); supervised-only, the Π model and Temporal Ensembling are raw student weights, "
            "while the paper evaluates all of them on EMA weights (and ConvNet-13 then had no mean-only batch norm on its softmax layer). It is kept until the CPU-scale Table 2 is "
            "re-measured with EMA evaluation for every method, at least 3 seeds and longer budgets.\n\n"
        )
    return text + result["table"] + "\n" + result.get("notes", "") + "\n"


def _percent(values: list[float]) -> str:
    from meanteacher.report import mean_std

    mean, std = mean_std(values)
    return f"{100 * mean:.2f}" if len(values) == 1 else f"{100 * mean:.2f} ± {100 * std:.2f}"


def defaults_section(result: dict) -> str:
    from .common import markdown_table
    from .defaults import BUDGETS, CHOICES, LABELS, LONGER

    runs = result["runs"]
    text = _stamp(result, "python -m benchmarks.defaults --json docs/bench/defaults.json") + (
        "\nThe shared CIFAR-10 JPEGs trained as a user would: `meanteacher train --data cifar10-jpeg.tar.gz --labels N "
        "--steps S --set arch_options.width=0.25 --precision bf16 --set channels_last=true` and nothing else; 100 "
        "images per class are held out of training as a validation split (`validation_per_class=100`). "
        "Errors are of the EMA network (Mean Teacher's teacher), in %. Seeds: "
        f"{sorted({r['seed'] for r in runs.values()})}.\n\n"
        "**Choosing** (Mean Teacher, 1000 labels, 1000 steps): consistency weight per class and labeled images per "
        "batch of 100, judged on the validation split.\n\n"
    )
    rows = []
    for weight in CHOICES["consistency"]:
        for labeled in CHOICES["labeled_per_batch"]:
            found = [r for name, r in runs.items() if name.startswith(f"choose-c{int(weight)}-l{labeled}-")]
            if found:
                rows.append([f"{weight / 10:g} per class ({weight:g})", labeled, _percent([r["validation_ema_error"] for r in found]),
                             _percent([r["ema_error"] for r in found])])
    text += markdown_table(["consistency weight", "labeled per batch", "validation error", "test error"], rows) + "\n"
    rows = []
    for labels, steps in [(labels, steps) for steps in BUDGETS for labels in LABELS] + list(LONGER.items()):
        errors = {method: {r["seed"]: r["ema_error"] for name, r in runs.items() if name.startswith(f"verify-{labels}-{steps}-{method}-s")}
                  for method in ("supervised", "mean-teacher")}
        paired = sorted(set(errors["supervised"]) & set(errors["mean-teacher"]))
        gains = [errors["supervised"][seed] - errors["mean-teacher"][seed] for seed in paired]
        rows.append([labels, steps, len(paired), _percent(list(errors["supervised"].values())) if errors["supervised"] else "–",
                     _percent(list(errors["mean-teacher"].values())) if errors["mean-teacher"] else "–",
                     _percent(gains) if gains else "–", sum(g > 0 for g in gains)])
    text += ("**Verifying** the defaults (no setting but the recipe above) at three label counts and two budgets, and a "
             "longer budget at 4000 labels: test error of the EMA network, mean ± std over label sets (seeds); the gain is "
             "supervised-only minus Mean Teacher per label set (paired: same labels, same test set).\n\n")
    text += markdown_table(["labels", "steps", "label sets", "supervised-only", "Mean Teacher (teacher)", "gain (points)",
                            "label sets where Mean Teacher wins"], rows) + "\n"
    return text + result.get("notes", "") + "\n"


def demo_section(result: dict) -> str:
    from .common import markdown_table

    text = _stamp(result, "python -m benchmarks.demo --json docs/bench/demo.json") + (
        "\n`meanteacher demo` (built-in digits, 50 labels, 3 label sets per method) in a fresh process under each "
        "CPU kernel set; test error of the EMA network in %, mean ± std over the label sets.\n\n"
    )
    rows = [[setting, f"{r['mean_std']['supervised'][0]:.1f} ± {r['mean_std']['supervised'][1]:.1f}",
             f"{r['mean_std']['mean-teacher'][0]:.1f} ± {r['mean_std']['mean-teacher'][1]:.1f}", f"{r['seconds']:.0f}"]
            for setting, r in result["kernel_sets"].items()]
    return text + markdown_table(["kernel set", "supervised-only", "Mean Teacher (teacher)", "wall time (s)"], rows) + "\n" + result.get("notes", "") + "\n"


def speed_section(result: dict) -> str:
    text = _stamp(result, "python -m benchmarks.speed --json docs/bench/speed.json")
    text += (f"\nFull-width ConvNet-13 (3.1 M parameters), batch {result['batch_size']}, CPU, medians of "
             f"{result.get('repeats', 5)} timed steps after 2 warm-up steps; all rows measured in one process.\n\n")
    return text + speed_table(result) + "\n" + result.get("notes", "") + "\n"


def ema_section(result: dict) -> str:
    text = _stamp(result, "python -m benchmarks.ema --json docs/bench/ema.json") + "\n"
    return text + (
        f"ConvNet-13 at full width ({result['parameters']:,} parameters in {result['tensors']} tensors), "
        f"{result['device']}: the reference code's per-parameter `mul_().add_()` loop takes "
        f"{result['loop_ms']:.3f} ms per update, `EMATeacher.update` (one `torch._foreach_lerp_` over "
        f"cached tensor lists) {result['fused_ms']:.3f} ms: **{result['speedup']:.2f}x faster** "
        f"(median of 5 interleaved rounds of medians).\n"
    )


def data_section(result: dict) -> str:
    return _stamp(result, "python -m benchmarks.data_load --json docs/bench/data_load.json") + (
        f"\nFirst load (reading the .tar.gz and decoding 60,000 JPEGs, then writing the cache): "
        f"{result['first_s']:.1f} s (target < 60 s). Cached load: {result['cached_s']:.2f} s, median of 3 "
        f"(target < 3 s). Each in a fresh process; interpreter start-up not counted.\n"
    )


def throughput_section(result: dict) -> str:
    from .throughput import flops_table, table as throughput_table

    flops = result["flops"]["mean-teacher"]
    text = _stamp(result, result["command"]) + (
        "\nFLOPs of one training step of the `cifar10-4000` preset's network (full-width ConvNet-13, batch 100), "
        "counted by `torch.utils.flop_counter` over a real step (convolutions and matrix products, forward and "
        "backward, student and teacher; the same on every device):\n\n"
    ) + flops_table(result) + "\n"
    text += f"Mean Teacher step, medians of {result['repeats']} blocks of {result['block']} step(s) on {result['device']}:\n\n"
    text += throughput_table(result) + "\n"
    modes = result["modes"]
    if "bf16+channels_last" in modes and "bf16+channels_last+compile" in modes:
        ratio = modes["bf16+channels_last"]["step_ms"] / modes["bf16+channels_last+compile"]["step_ms"]
        text += f"`compile` (student and teacher) makes the bf16 + channels_last step {ratio:.2f}x faster here.\n\n"
    budget_ms = flops / (0.30 * 989.4e12) * 1e3
    if result.get("peak_bf16_tflops") is None:
        text += (
            "No accelerator was available to the session that wrote this page (the device tool's status: no "
            "machine lent to this task), so the figures above are the CPU's, and the GPU target (at least 30 % of "
            "the bf16 peak) is not yet measured. What it takes: an H100 SXM or H200 peaks at 989.4 dense bf16 "
            f"TFLOP/s, so 30 % of it on a {flops / 1e9:.1f} GFLOP step means at most **{budget_ms:.2f} ms per Mean "
            "Teacher step**. CUDA-graph capture (`cuda_graphs`) is built and its capture-safety is tested on the "
            "CPU, but it has not run on a GPU: `tests/test_gpu.py` (skipped without CUDA) checks it there. "
            "To measure on a GPU machine (no data files needed): `make test`, "
            "`python -m benchmarks.throughput --json docs/bench/throughput.json`, then "
            "`python -m benchmarks.document`. The paper-scale run: `meanteacher train --preset cifar10-4000 --data "
            "CIFAR10 --precision bf16 --set channels_last=true --set cuda_graphs=true`.\n"
        )
    return text


SECTIONS = [
    ("## The demo under several CPU kernel sets", "demo", demo_section),
    ("## Defaults for a user's own data", "defaults", defaults_section),
    ("## 1. Accuracy: the paper's Table 2 at CPU scale, on real CIFAR-10", "accuracy", accuracy_section),
    ("## 2. Speed: one table, one run, ratios", "speed", speed_section),
    ("## EMA update cost", "ema", ema_section),
    ("## Loading the CIFAR-10 JPEG archive", "data_load", data_section),
    ("## 3. GPU: achieved TFLOP/s of the paper-scale step", "throughput", throughput_section),
]
"""Each section: its heading, the JSON file in docs/bench/ it is written from, and the function writing its body."""


def section(heading: str, result: dict | None, body: Callable[[dict], str]) -> str:
    """A section's heading and its body, or "Not measured yet." where the benchmark has not been run."""
    return f"{heading}\n\n" + ("Not measured yet.\n" if result is None else body(result))


def main() -> int:
    parts = [
        "# Benchmarks\n\nWritten by `python -m benchmarks.document` from the JSON files in `docs/bench/`; "
        "every figure names the command that measured it, the machine and the date. Timings on these "
        "machines are noisy, so speed is given as ratios measured side by side in one process, and as "
        "medians of several repeats.\n",
        *(section(heading, _load(name), body) for heading, name, body in SECTIONS),
    ]
    (DOCS / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote {DOCS / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
