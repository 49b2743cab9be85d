"""Write docs/benchmarks.md from the JSON results the benchmarks saved in docs/bench/.

python -m benchmarks.ema --json docs/bench/ema.json
python -m benchmarks.speed --json docs/bench/speed.json
python -m benchmarks.accuracy --json docs/bench/accuracy.json
python -m benchmarks.data_load --json docs/bench/data_load.json
python -m benchmarks.throughput --json docs/bench/throughput.json
python -m benchmarks.defaults --phase report --seeds 0 1 2 --json docs/bench/defaults.json
python -m benchmarks.demo --json docs/bench/demo.json
python -m benchmarks.vat --json docs/bench/vat.json
python -m benchmarks.image_size --json docs/bench/image_size.json
python -m benchmarks.flip --json docs/bench/flip.json
python -m benchmarks.photo_recipe --json docs/bench/photo_recipe.json
python -m benchmarks.photos --json docs/bench/photos.json
python -m benchmarks.photos --json docs/bench/photos_pseudo.json --only supervised-10m-seed0 pseudo-labels-10m-seed0 ...
python -m benchmarks.speed --part views --width 0.25 --json docs/bench/views.json
python -m benchmarks.speed --part precision --width 0.25 --json docs/bench/precision.json
python -m benchmarks.strong --json docs/bench/strong.json
python -m benchmarks.pseudo --labels L --steps S [--rows ...] --json docs/bench/pseudo.json   (one cell each)
python -m benchmarks.pile --seeds 0 1 2 --json docs/bench/pile.json
python -m benchmarks.label_next --seeds 0 1 2 --json docs/bench/label_next.json
python -m benchmarks.document
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .speed import table as speed_table

DOCS = Path(__file__).resolve().parents[1] / "docs"
RESULTS = DOCS / "bench"


def _runs(runs: dict[str, dict], **fields) -> list[dict]:
    """The runs whose fields (set by their benchmark's jobs) are ``fields``; a field given as None must be unset."""
    return [run for run in runs.values() if all(run.get(name) == value for name, value in fields.items())]


def _run(runs: dict[str, dict], **fields) -> dict | None:
    """The first run with ``fields`` (see ``_runs``), or None."""
    found = _runs(runs, **fields)
    return found[0] if found else None


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _stamp(result: dict, command: str) -> str:
    return f"Command: `{command}`. Machine: {result['machine']}. Date: {result['date']}.\n"


PAPER_TABLE_2 = {
    1000: {
        "supervised": "46.43 ± 1.21",
        "pi": "27.36 ± 1.20",
        "temporal-ensembling": "–",
        "mean-teacher": "21.55 ± 1.48",
    },
    4000: {
        "supervised": "20.66 ± 0.57",
        "pi": "13.20 ± 0.27",
        "temporal-ensembling": "12.16 ± 0.31",
        "mean-teacher": "12.31 ± 0.28",
    },
}
"""The paper's Table 2 (CIFAR-10 test error %, ConvNet-13, 10 label sets), for reference."""


def _mean_std(pair: list[float]) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def accuracy_section(result: dict) -> str:
    from meanteacher.report import mean_std

    from .common import markdown_table

    text = _stamp(result, "python -m benchmarks.accuracy --json docs/bench/accuracy.json") + "\n"
    steps = result["steps"]
    text += (
        "The paper's Table 2 at CPU scale. Every run is what `meanteacher train --data cifar10-jpeg.tar.gz --labels N --steps S` "
        "does with ConvNet-13 at width 0.25 in bf16 with channels_last (presets `cifar10-cpu-1000` and `cifar10-cpu-4000`, which "
        "carry Mean Teacher's chosen learning rate): "
        "schedules that follow the run, half of each batch of 100 labeled for the semi-supervised methods and all of it "
        "for supervised-only, 100 images per class held out of training as a validation split. The design:\n\n"
        f"- Equal optimizer steps for every method at a label count: {', '.join(f'{s} at {n} labels' for n, s in steps.items())}.\n"
        "- Every method is evaluated on EMA weights, as in the paper (Mean Teacher's EMA network is its teacher).\n"
        f"- Supervised-only and Mean Teacher get the same tuning: learning rates {', '.join(f'{lr:g}' for lr in result['learning_rates'])} "
        "at seed 0, the one with the lowest validation error kept; the test set is never used to choose. The Π model and "
        "Temporal Ensembling, consistency methods with Mean Teacher's recipe, take Mean Teacher's learning rate.\n"
        "- Seeds are label sets: each seed draws other labeled images, batches and noise, the same for every method.\n"
        "- One thread per run, two runs side by side on the 2 cores.\n\n"
    )
    if result["tuning"]:
        rows = [
            [
                s["labels"],
                s["method"],
                f"{s['lr']:g}",
                f"{100 * s['validation_ema_error']:.2f}",
                f"{100 * s['ema_error']:.2f}",
            ]
            for s in sorted(result["tuning"].values(), key=lambda s: (s["labels"], s["method"], s["lr"]))
        ]
        text += "**Tuning** (seed 0): error of the EMA network in %.\n\n"
        text += markdown_table(["labels", "method", "learning rate", "validation error", "test error"], rows) + "\n"
        chosen = ", ".join(
            f"{key.split('-', 1)[1]} at {key.split('-', 1)[0]} labels: {lr:g}"
            for key, lr in result["chosen_lr"].items()
        )
        text += f"Chosen: {chosen or 'tuning not finished'}.\n\n"
    rows = [
        [
            r["labels"],
            r["steps"],
            r["method"],
            f"{r['lr']:g}",
            len(r["seeds"]),
            _mean_std(r["ema_error"]),
            _mean_std(r["student_error"]),
            PAPER_TABLE_2[r["labels"]][r["method"]],
        ]
        for r in result["rows"]
    ]
    text += (
        "**Table 2 at CPU scale**: test error in %, mean ± std over the seeds; "
        "the paper's value (full-scale, 150k steps) beside it.\n\n"
    )
    text += (
        markdown_table(
            ["labels", "steps", "method", "learning rate", "seeds", "EMA (teacher) error", "student error", "paper"],
            rows,
        )
        + "\n"
    )
    for labels in steps:
        by_method = {r["method"]: r for r in result["rows"] if r["labels"] == int(labels)}
        if "supervised" in by_method and "mean-teacher" in by_method:
            sup, mt = by_method["supervised"]["ema_error"], by_method["mean-teacher"]["ema_error"]
            text += (
                f"At {labels} labels Mean Teacher's teacher is {sup[0] - mt[0]:+.2f} points better than supervised-only"
            )
            text += (
                f", {(sup[0] - mt[0]) / max(sup[1], mt[1]):.1f} times the larger standard deviation of the two rows "
                "(the target is more than 2).\n"
                if min(len(by_method["supervised"]["seeds"]), len(by_method["mean-teacher"]["seeds"])) > 1
                else " (one seed: no spread yet).\n"
            )
    for key, step in result["mean_teacher_ahead_from_step"].items():
        labels, steps = key.split("-")
        text += f"\n![Figure 3 at CPU scale, {labels} labels, {steps} steps](figure3-cpu-{key}.png)\n\n"
        longer = [
            r for r in result.get("longer_runs", {}).values() if (r["labels"], r["steps"]) == (int(labels), int(steps))
        ]
        if longer:
            by_method = {
                m: [r for r in longer if r["method"] == m]
                for m in ("supervised", "pi", "temporal-ensembling", "mean-teacher")
            }
            per_method = [
                f"{m} {_mean_std(mean_std([100 * r['ema_error'] for r in runs]))} ({len(runs)} seeds, lr "
                f"{', '.join(sorted({format(r['lr'], 'g') for r in runs}))})"
                for m, runs in by_method.items()
                if runs
            ]
            text += f"A longer budget: test error of the EMA network at step {steps}, {'; '.join(per_method)}.\n"
        text += (
            f"At {labels} labels and {steps} steps the mean teacher error stays below the mean supervised-only error from step {step} on.\n"
            if step is not None
            else f"At {labels} labels and {steps} steps the mean teacher error does not stay below supervised-only's within the run.\n"
        )
    text += f"\nTotal: {result['cpu_hours']:.1f} CPU-hours (the runs' wall times, one thread each).\n"
    return text + "\n" + result.get("notes", "") + "\n"


def vat_section(result: dict) -> str:
    from .common import markdown_table

    text = _stamp(result, "python -m benchmarks.vat --json docs/bench/vat.json") + (
        f"\nMean Teacher, VAT and Mean Teacher + VAT at {result['labels']} labels and {result['steps']} steps: the recipe "
        "of the CPU Table 2 runs (presets `cifar10-cpu-1000`, `cifar10-cpu-1000-vat`, `cifar10-cpu-1000-mean-teacher-vat`), "
        f"the same label sets (seeds), and like the Π model and Temporal Ensembling there the learning rate chosen for Mean "
        f"Teacher on the validation split ({result['lr']:g}). The perturbation norm `vat_eps` (the option `eps` of each method: "
        "`--set vat.eps=...`, `--set mean-teacher-vat.eps=...`) of each VAT method is chosen at seed 0 from "
        f"{', '.join(f'{e:g}' for e in result['eps_grid'])} on the validation split.\n\n"
    )
    if result["tuning"]:
        rows = [
            [s["method"], f"{s['vat_eps']:g}", f"{100 * s['validation_ema_error']:.2f}", f"{100 * s['ema_error']:.2f}"]
            for s in sorted(result["tuning"].values(), key=lambda s: (s["method"], s["vat_eps"]))
        ]
        text += "**Tuning** (seed 0): error of the EMA network in %.\n\n"
        text += markdown_table(["method", "vat_eps", "validation error", "test error"], rows) + "\n"
    rows = [
        [
            r["method"],
            "–" if r["vat_eps"] is None else f"{r['vat_eps']:g}",
            len(r["seeds"]),
            _mean_std(r["ema_error"]),
            _mean_std(r["student_error"]),
            "–" if r["gain_over_mean_teacher"] is None else _mean_std(r["gain_over_mean_teacher"]),
            f"{r['seconds_per_run'][0]:.0f}",
        ]
        for r in result["rows"]
    ]
    text += (
        "**Test error** in %, mean ± std over the label sets; the gain is Mean Teacher's teacher error minus the "
        "method's EMA error on the same label set (positive: better than Mean Teacher).\n\n"
    )
    text += (
        markdown_table(
            [
                "method",
                "vat_eps",
                "seeds",
                "EMA (teacher) error",
                "student error",
                "gain over Mean Teacher (points)",
                "seconds per run",
            ],
            rows,
        )
        + "\n"
    )
    if result.get("figure"):
        text += f"![Mean Teacher, VAT and Mean Teacher + VAT, {result['labels']} labels]({result['figure']})\n\n"
    return text + result.get("notes", "") + "\n"


def _percent(values: list[float]) -> str:
    from meanteacher.report import mean_std

    mean, std = mean_std(values)
    return f"{100 * mean:.2f}" if len(values) == 1 else f"{100 * mean:.2f} ± {100 * std:.2f}"


def defaults_section(result: dict) -> str:
    from .common import markdown_table
    from .defaults import BUDGETS, CHOICES, DEFAULT_LR, LABELS, LONGER, SHORT_RUNS

    runs = result["runs"]
    text = _stamp(
        result, "python -m benchmarks.defaults --phase report --seeds 0 1 2 --json docs/bench/defaults.json"
    ) + (
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
            found = _runs(runs, phase="choose", consistency=weight, labeled_per_batch=labeled)
            if found:
                rows.append(
                    [
                        f"{weight / 10:g} per class ({weight:g})",
                        labeled,
                        _percent([r["validation_ema_error"] for r in found]),
                        _percent([r["ema_error"] for r in found]),
                    ]
                )
    text += markdown_table(["consistency weight", "labeled per batch", "validation error", "test error"], rows) + "\n"
    text += (
        "**Short runs** (seed 0; under 50 passes over the labeled images at half of each batch): Mean Teacher with more "
        "of each batch labeled, validation error of the EMA network, with supervised-only's beside it.\n\n"
    )
    rows = []
    for (labels, steps), _shares in SHORT_RUNS.items():
        supervised = _run(runs, phase="verify", labels=labels, steps=steps, method="supervised", seed=0, lr=DEFAULT_LR)
        cells = [
            f"{100 * r['validation_ema_error']:.2f}"
            if (
                r := _run(
                    runs, phase="share", labels=labels, steps=steps, labeled_per_batch=k, seed=0, consistency=None
                )
            )
            else "–"
            for k in (50, 75, 100)
        ]
        weight = _run(runs, phase="share", labels=labels, steps=steps, labeled_per_batch=50, seed=0, consistency=10.0)
        rows.append(
            [
                labels,
                steps,
                f"{100 * supervised['validation_ema_error']:.2f}" if supervised else "–",
                *cells,
                f"{100 * weight['validation_ema_error']:.2f}" if weight else "–",
            ]
        )
    text += (
        markdown_table(
            [
                "labels",
                "steps",
                "supervised-only",
                "50 labeled",
                "75 labeled",
                "100 labeled",
                "50 labeled, weight 1 per class",
            ],
            rows,
        )
        + "\n"
    )
    rows = []
    for labels, steps in [(labels, steps) for steps in BUDGETS for labels in LABELS] + list(LONGER):
        errors = {
            method: {
                r["seed"]: r["ema_error"]
                for r in _runs(runs, phase="verify", labels=labels, steps=steps, method=method, lr=DEFAULT_LR)
            }
            for method in ("supervised", "mean-teacher")
        }
        paired = sorted(set(errors["supervised"]) & set(errors["mean-teacher"]))
        gains = [errors["supervised"][seed] - errors["mean-teacher"][seed] for seed in paired]
        rows.append(
            [
                labels,
                steps,
                len(paired),
                _percent(list(errors["supervised"].values())) if errors["supervised"] else "–",
                _percent(list(errors["mean-teacher"].values())) if errors["mean-teacher"] else "–",
                _percent(gains) if gains else "–",
                sum(g > 0 for g in gains),
            ]
        )
    text += (
        "**Verifying** the defaults (no setting but the recipe above) at three label counts and two budgets, and a "
        "longer budget at 4000 labels: test error of the EMA network, mean ± std over label sets (seeds); the gain is "
        "supervised-only minus Mean Teacher per label set (paired: same labels, same test set).\n\n"
    )
    text += (
        markdown_table(
            [
                "labels",
                "steps",
                "label sets",
                "supervised-only",
                "Mean Teacher (teacher)",
                "gain (points)",
                "label sets where Mean Teacher wins",
            ],
            rows,
        )
        + "\n"
    )
    return text + result.get("notes", "") + "\n"


def demo_section(result: dict) -> str:
    from .common import markdown_table

    text = _stamp(result, "python -m benchmarks.demo --json docs/bench/demo.json") + (
        "\n`meanteacher demo` (built-in digits, 50 labels, 3 label sets per method) in a fresh process under each "
        "CPU kernel set; test error of the EMA network in %, mean ± std over the label sets.\n\n"
    )
    rows = [
        [
            setting,
            f"{r['mean_std']['supervised'][0]:.1f} ± {r['mean_std']['supervised'][1]:.1f}",
            f"{r['mean_std']['mean-teacher'][0]:.1f} ± {r['mean_std']['mean-teacher'][1]:.1f}",
            f"{r['seconds']:.0f}",
        ]
        for setting, r in result["kernel_sets"].items()
    ]
    return (
        text
        + markdown_table(["kernel set", "supervised-only", "Mean Teacher (teacher)", "wall time (s)"], rows)
        + "\n"
        + result.get("notes", "")
        + "\n"
    )


def speed_section(result: dict) -> str:
    text = _stamp(result, "python -m benchmarks.speed --json docs/bench/speed.json")
    text += (
        f"\nFull-width ConvNet-13 (3.1 M parameters), batch {result['batch_size']}, CPU, medians of "
        f"{result.get('repeats', 5)} timed steps after 2 warm-up steps; all rows measured in one process.\n\n"
    )
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
    from .throughput import flops_table
    from .throughput import table as throughput_table

    flops = result["flops"]["mean-teacher"]
    text = (
        _stamp(result, result["command"])
        + (
            "\nFLOPs of one training step of the `cifar10-4000` preset's network (full-width ConvNet-13, batch 100), "
            "counted by `torch.utils.flop_counter` over a real step (convolutions and matrix products, forward and "
            "backward, student and teacher; the same on every device):\n\n"
        )
        + flops_table(result)
        + "\n"
    )
    text += f"Mean Teacher step, medians of {result['repeats']} blocks of {result['block']} step(s) on {result['device']}:\n\n"
    text += throughput_table(result) + "\n"
    modes = result["modes"]
    if "bf16+channels_last" in modes and "bf16+channels_last+compile" in modes:
        ratio = modes["bf16+channels_last"]["step_ms"] / modes["bf16+channels_last+compile"]["step_ms"]
        text += f"`compile` (student and teacher) makes the bf16 + channels_last step {ratio:.2f}x faster here.\n\n"
    budget_ms = flops / (0.30 * 989.4e12) * 1e3
    if result.get("peak_bf16_tflops") is None:
        text += (
            "No GPU speed measurement exists yet: the figures above are the CPU's. The target is at least 30 % of the "
            "bf16 peak; an H100 SXM or H200 peaks at 989.4 dense bf16 TFLOP/s, so on a "
            f"{flops / 1e9:.1f} GFLOP step that means at most **{budget_ms:.2f} ms per Mean Teacher step**. "
            "CUDA-graph capture (`cuda_graphs`) is built and its capture-safety is tested on the CPU (no host "
            "read in the whole step, `CapturableAdam` included); on one H100 (torch 2.11.0+cu130, 2026-11-27) "
            "`tests/test_gpu.py` passed 10 of 12: the captured step equals the same step run eagerly for Mean "
            "Teacher, supervised-only and the Π model; both Temporal Ensembling tests failed (a Python `True` "
            "assigned through an index, copied from host memory on a GPU, which capture refuses: fixed since, "
            "caught by the CPU-side capture check, not rerun on a GPU). One command "
            "measures all of it on a GPU machine, without installing anything, in about 8 minutes: "
            "`bash benchmarks/gpu_check.sh --out gpu-check --data cifar10-jpeg.tar.gz` (the machine's bf16 "
            "and copy ceilings, `tests/test_gpu.py`, the captured step against the same step run eagerly, "
            "ms/step and TFLOP/s per mode for supervised-only and Mean Teacher, a 4000-step CIFAR-10 run eager "
            "and captured, and a CPU-only process reading the GPU checkpoints); `--paper` trains the "
            "`cifar10-4000` presets side by side.\n"
        )
    return text


def image_size_section(result: dict) -> str:
    from .image_size import MINUTES, STEPS_WANTED
    from .image_size import table as image_size_table

    budget = MINUTES * 60 / STEPS_WANTED
    text = _stamp(result, result["command"]) + (
        f"\nA Mean Teacher step (batch 100, ConvNet-13, {result['precision']}, {result['threads']} threads) on images of each "
        f"size, median of {result['repeats']} steps. The rule: a {MINUTES}-minute run should make {STEPS_WANTED:,} steps "
        f"({budget:.2f} s a step; 75 passes over 1,000 labels at 50 per batch, from which Mean Teacher paid on CIFAR-10). "
        "The default size of an in-memory image folder is the largest at which width 0.25 fits, the smallest measured "
        "if none does; the default width of ConvNet-13 on a CPU is then the widest that fits at that size, the narrowest if none does.\n\n"
    )
    text += image_size_table(result) + "\n"
    fits = any(by_width.get("0.25", float("inf")) <= budget for by_width in result["step_seconds"].values())
    verdict = (
        ""
        if fits
        else (
            f"On this machine no size fits the rule at width 0.25 ({result['step_seconds'][str(result['chosen'])]['0.25']:.2f} s a step "
            f"at {result['chosen']} px: about "
            f"{MINUTES * 60 / result['step_seconds'][str(result['chosen'])]['0.25']:,.0f} steps in {MINUTES} minutes), "
            "so the smallest size and width measured are the defaults. "
        )
    )
    return (
        text
        + (
            f"{verdict}Chosen: **{result['chosen']} px** (`auto.FOLDER_IMAGE_SIZE`; `--image-size N` sets another) and "
            f"**width {result['chosen_width']:g}** (`auto.CPU_WIDTH`; `--set arch_options.width=W` sets another; on a GPU "
            "the paper's width 1). Both are written into the run's `config.toml`.\n\n"
        )
        + result.get("notes", "")
        + "\n"
    )


def flip_section(result: dict) -> str:
    from .flip import LABELS, STEPS
    from .flip import table as flip_table

    verdict = result["verdict"]
    gain, sets = verdict["validation_ema_error"]["gain"], verdict["label_sets"]
    text = _stamp(result, result["command"]) + (
        f"\nMean Teacher on the shared CIFAR-10 JPEGs as a user runs it (`--labels {LABELS} --steps {STEPS}`, every other "
        "setting automatic: 32 px, width 0.25, fp32 here), 100 images per class held out as the validation split, with and "
        f"without horizontal flips, {sets} label sets; errors of the EMA network, mean ± std, and the paired gain of flips.\n\n"
    )
    text += flip_table(result) + "\n"
    wins = verdict["flip_wins_on_validation"]
    clear = gain[0] > 0 and gain[0] > gain[1] and 2 * wins > sets
    reading = (
        "Flips lowered the validation error"
        if clear
        else "Flips made no difference beyond noise on the validation split"
    )
    return text + (
        f"{reading} ({gain[0]:+.2f} ± {gain[1]:.2f} points, better on {wins} of {sets} label set(s)). `flip` stays "
        f"**{'on' if clear else 'off'}** by default (`--set flip={'false' if clear else 'true'}` changes it); the paper's "
        "presets keep the paper's choice.\n\n" + result.get("notes", "") + "\n"
    )


def photos_section(result: dict) -> str:
    from .photos import PER_CLASS, PHOTO_SIZE, RECIPES, paired
    from .photos import table as photos_table

    runs = list(result["runs"].values())
    text = _stamp(result, result["command"]) + (
        f"\nA folder of ordinary photos as a new user brings it: `photos/<class>/*.jpg`, 10 classes of {PER_CLASS} JPEGs of "
        f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} pixels (the shared CIFAR-10 training images, upscaled), no test folder; each run a "
        "fresh `meanteacher train --data photos --labels 100 ...` process, timed from its start (interpreter start, decoding, "
        "the time probe and set-up included). Errors are on the 500 held-out test images, %.\n\n"
    )
    text += photos_table(result) + "\n"
    timed = [run for run in runs if run["minutes"]]
    if timed:
        off = [100 * (run["wall_seconds"] / (60 * run["minutes"]) - 1) for run in timed]
        plans = [run["plan_seconds"] for run in runs if run["plan_seconds"] is not None]
        shares = [100 * run["eval_seconds"] / run["seconds"] for run in timed if run.get("seconds")]
        text += (
            f"Time: every `--time` run ended within {max(abs(o) for o in off):.1f} % of the time asked "
            f"({min(off):+.1f} to {max(off):+.1f} %, {len(timed)} runs); the plan line came {min(plans):.1f} to "
            f"{max(plans):.1f} s after the command started; evaluation took {min(shares):.1f} to {max(shares):.1f} % of "
            "the training time.\n"
        )
    names = {
        "mean-teacher": "Mean Teacher's teacher",
        "pseudo-labels": "Mean Teacher with confident pseudo-labels (its teacher)",
        "fixmatch": "FixMatch",
    }
    for row in ("mean-teacher", *RECIPES):
        verdict = paired(result, row)
        if verdict:
            text += (
                f"\nAt 10 minutes, over {verdict['label_sets']} label sets (paired: same labels, same test images): "
                f"{names.get(row, row)} {_mean_std([100 * v for v in verdict['row']])} % against supervised-only's EMA "
                f"{_mean_std([100 * v for v in verdict['supervised']])} %; gain {_mean_std([100 * v for v in verdict['gain']])} "
                f"points, ahead on {verdict['wins']} of {verdict['label_sets']}.\n"
            )
    return text + "\n" + result.get("notes", "") + "\n"


def photo_recipe_section(result: dict) -> str:
    from .photo_recipe import LABELS, RECIPES, STEPS, TRAIN_PER_CLASS, VALIDATION_PER_CLASS
    from .photo_recipe import table as recipe_table

    recipes = "; ".join(
        f"`{name}`: " + (", ".join(f"`{k}={v}`" for k, v in settings.items()) or "every setting automatic")
        for name, settings in RECIPES.items()
    )
    text = _stamp(result, result["command"]) + (
        f"\nThe photo folder's recipe, chosen on a validation split: a second folder built like it from other CIFAR-10 training "
        f"images ({TRAIN_PER_CLASS} per class to train on, {VALIDATION_PER_CLASS} per class to validate on, none of them in the "
        f"photo folder), `--labels {LABELS}`, at the steps a 10-minute run plans here ({STEPS['mean-teacher']:,} for Mean Teacher, "
        f"{STEPS['supervised']:,} for supervised-only). Recipes: {recipes}. Validation error of the EMA network, mean ± std over "
        "the label sets; Mean Teacher's gains are paired on the same labels, with supervised-only and, for a recipe that changes "
        "only the teacher's settings, with Mean Teacher at the automatic ones.\n\n"
    )
    return text + recipe_table(result) + "\n" + result.get("notes", "") + "\n"


def views_section(result: dict) -> str:
    from .speed import views_table

    text = _stamp(result, result["command"]) + (
        f"\nConvNet-13 at width {result['width']:g}, batch {result['batch_size']}, {result['precision']}, Mean Teacher; "
        f"{result['repeats']} rounds alternating the weak and the strong trainer, medians. The strong view: 2 RandAugment-style "
        "operations at random strength up to the full range, then cutout of half the side, as tensor operations over the "
        "batch. TensorBoard writes one record per evaluation, not per step.\n\n"
    )
    return text + views_table(result) + "\n" + result.get("notes", "") + "\n"


def precision_section(result: dict) -> str:
    from .speed import precision_table

    hardware = "has" if result["native_bf16"] else "has no"
    text = _stamp(result, result["command"]) + (
        f"\nConvNet-13 at width {result['width']:g}, batch {result['batch_size']}, channels_last (the CPU recipe's); "
        f"{result['repeats']} rounds alternating the fp32 and the bf16 trainer, 2 steps each, medians. This CPU "
        f"{hardware} bf16 in hardware (AVX512_BF16 or AMX).\n\n"
    )
    return text + precision_table(result) + "\n" + result.get("notes", "") + "\n"


def strong_section(result: dict) -> str:
    from .common import markdown_table

    text = _stamp(result, result["command"]) + (
        f"\nConvNet-13 at width 0.25, {result['precision']}, the CPU Table 2's recipe (section 1). Chosen on the validation split "
        f"at 1000 labels and 1500 steps, seed 0 (magnitude, consistency weight): {result['choices']}. EMA network's test error, "
        "mean ± std over the label sets (count in brackets); gains of Mean Teacher with the strong student, paired on the same "
        'labels. A row "at step S" compares every run of its cell at the last evaluation all of them reached (same schedule, '
        "same step), where some did not finish.\n\n"
    )
    rows = []
    for cell, entry in result["cells"].items():
        for label, part in [(cell, entry)] + (
            [(f"{cell} at step {entry['at_step']['step']}", entry["at_step"])] if "at_step" in entry else []
        ):
            errors = {
                row: "–" if value["error"] is None else f"{_mean_std(value['error'])} ({len(value['seeds'])})"
                for row, value in part["rows"].items()
            }
            gains = {
                row: f"{_mean_std(g['gain'])} ({g['label_sets']})"
                for row, g in part["gains_of_strong_mean_teacher"].items()
            }
            rows.append(
                [
                    label,
                    *errors.values(),
                    *(gains.get(row, "–") for row in ("supervised/weak", "supervised/strong", "mean-teacher/weak")),
                ]
            )
    header = [
        "labels/steps",
        "supervised, weak",
        "supervised, strong",
        "Mean Teacher, weak",
        "Mean Teacher, strong",
        "gain over supervised weak",
        "over supervised strong",
        "over Mean Teacher weak",
    ]
    figures = " ".join(
        f"![{cell}](strong-{result.get('tag', 'cpu')}-{cell.replace('/', '-')}-{result['precision']}.png)"
        for cell in result["cells"]
    )
    return text + markdown_table(header, rows) + "\n" + figures + "\n\n" + result.get("notes", "") + "\n"


def pseudo_section(result: dict) -> str:
    from .common import markdown_table

    text = (
        "ConvNet-13 at width 0.25 in bf16 (unless a cell says otherwise) on the CPU Table 2's recipe (section 1) "
        "with the strong student view at magnitude "
        "0.5 for every row (the choice of the section on the strong student), 3 label sets. Mean Teacher's threshold was "
        "chosen on the validation split at seed 0; FixMatch keeps its paper's 0.95. EMA network's test error, mean ± std "
        "(label sets in brackets); the gain is supervised-only's error minus the row's, paired on the same labels "
        "(positive: the row is better). Pseudo-labels: the share of the unlabeled images of a batch above the threshold, "
        "and how many of those were right on the hidden labels, averaged over the training steps between the last two evaluations.\n\n"
    )
    for cell, entry in result["cells"].items():
        labels, steps, *precision = cell.split("/")
        text += f"**{labels} labels, {steps} steps{''.join(', ' + p for p in precision)}.** "
        text += _stamp(entry, entry["command"])
        if entry.get("precision", "bf16") != "bf16":
            text += (
                f"In {entry['precision']}, every row: this machine has no bf16 in hardware, and emulated bf16 made a step"
                " about ten times as long.\n"
            )
        tuning = ", ".join(
            f"{t['consistency_type']}{' (100 + 100)' if '-b200-' in name else ''} {100 * t['validation_ema_error']:.1f} %"
            for name, t in entry["tuning"].items()
        )
        elsewhere = entry.get("chosen_elsewhere")
        text += (
            f"Mean Teacher's threshold: {', '.join(elsewhere.values())}, as chosen on validation at another budget of"
            " the same labels (not tuned at this one).\n\n"
            if elsewhere
            else f"Mean Teacher's threshold on validation: {tuning or 'not tuned'}; chosen: {entry['choices'] or '–'}.\n\n"
        )
        rows = []
        for row, value in entry["table"].items():
            gain = value.get("gain_over_supervised")
            ahead = f", ahead on {sum(g > 0 for g in gain['values'])} of {gain['label_sets']}" if gain else ""
            pseudo = value.get("pseudo_labels_at_end")
            rows.append(
                [
                    row,
                    f"{_mean_std(value['error'])} ({len(value['per_label_set'])})",
                    f"{_mean_std(gain['gain'])}{ahead}" if gain else "–",
                    f"{pseudo['pseudo_mask_rate'][0]:.0f} % above, {pseudo['pseudo_accuracy'][0]:.0f} % right"
                    if pseudo
                    else "–",
                ]
            )
        text += (
            markdown_table(["row", "test error %", "gain over supervised-only", "pseudo-labels at the end"], rows)
            + "\n"
        )
        curves = {row: value["curves"] for row, value in entry["table"].items()}
        steps = [step for step, _ in next(iter(next(iter(curves.values())).values()))]
        means = {
            row: [sum(dict(curve)[step] for curve in runs.values()) / len(runs) for step in steps]
            for row, runs in curves.items()
        }
        most = max(len(runs) for runs in curves.values())
        headers = [
            row if len(curves[row]) == most else f"{row} ({len(curves[row])} of {most} label sets)" for row in means
        ]
        text += (
            "Test error at each evaluation, mean over the label sets:\n\n"
            + markdown_table(
                ["step", *headers], [[step, *(f"{means[row][i]:.1f}" for row in means)] for i, step in enumerate(steps)]
            )
            + "\n"
        )
        text += _unfinished_runs(entry)
        text += f"![{cell}](pseudo-{cell.replace('/', '-')}.png)\n\n"
    return text + result.get("notes", "") + "\n"


def _unfinished_runs(entry: dict) -> str:
    """The runs of a table still training, each at its last evaluation beside supervised-only's run on
    the same labels at the same step (where it has one)."""
    supervised = entry["table"].get("supervised", {}).get("curves", {})
    runs = []
    for row, by_seed in entry.get("unfinished", {}).items():
        for seed, curve in by_seed.items():
            step, error = curve[-1]
            baseline = dict(supervised.get(seed, [])).get(step)
            beside = f" (supervised-only {baseline:.1f} %)" if baseline is not None else ""
            runs.append(f"{row} on label set {seed} at step {step}: {error:.1f} %{beside}")
    return f"Still training, not in the table: {'; '.join(runs)}.\n\n" if runs else ""


def label_next_section(result: dict) -> str:
    from .label_next import markdown

    first = result["first"]
    per_label_set = " / ".join(f"{error:.2f}" for error in first["per_label_set"].values())
    label_sets = " / ".join(first["per_label_set"])
    return (
        _stamp(result, result["command"])
        + "\nThe shared CIFAR-10 JPEGs with the `cifar10-cpu-1000` preset's recipe (ConvNet-13 at width 0.25, bf16, "
        "1500 steps, the paper's weak noise, 100 images a class held out for validation). Mean Teacher first trains on "
        "250 labels, with the other 48,750 training images unlabeled. Each strategy of `meanteacher suggest` then picks "
        "250 of those 48,750, which are labelled from their true labels, and Mean Teacher trains again on the 500, "
        "from scratch or from the first run (`--init`), whichever did better on validation. The table gives the EMA "
        "network's error, mean ± std (label sets in brackets). Gains are random's error minus the strategy's, paired "
        "on the label set (positive: the strategy picked better).\n\n"
        f"First run, 250 labels: test error {first['test'][0]:.2f} ± {first['test'][1]:.2f} % ({per_label_set} on "
        f"label sets {label_sets}).\n\n"
        + markdown(result, result["picks"])
        + "\n![test error after labeling 250 picks, per strategy and label set](label-next.png)\n\n"
        + result.get("notes", "")
    )


def pile_section(result: dict) -> str:
    from .common import markdown_table

    text = (
        "Each label set keeps 100 training images per class in class folders; the pile is given with `--unlabeled` "
        "as a text file of the first 0, 2,000, 10,000 or 49,000 of the other training images (in the label set's own "
        "shuffled order), and the off-topic pile is 10,000 of them from 5 classes only (airplane, automobile, bird, cat, "
        "deer). The `cifar10-cpu-1000` preset's recipe as it runs by default (ConvNet-13 at width 0.25, bf16, 1500 "
        "steps, learning rate 0.006, the paper's weak noise for both networks, the MSE consistency at 3 per class, "
        "half of each batch labeled when there is a pile and every image labeled when there is none), every image "
        "of the class folders labeled, no validation hold-out, the standard 10,000 test images. "
        "EMA network's test error, mean ± std (label "
        "sets in brackets); the gain is supervised-only's error minus Mean Teacher's, paired on the same labels "
        "(positive: the pile paid). Supervised-only ignores the pile and runs once per label set.\n\n"
    )
    table = result.get("table", {})
    if table:
        text += _stamp(result, result["command"]) + "\n"
        rows = []
        for row, value in table.items():
            gain = value.get("gain_over_supervised")
            ahead = f", ahead on {sum(g > 0 for g in gain['values'])} of {gain['label_sets']}" if gain else ""
            kind = "off-topic pile" if row.startswith("offtopic") else "pile"
            name = "supervised-only" if row == "supervised" else f"Mean Teacher, {kind} of {value['pile']:,}"
            rows.append(
                [
                    name,
                    f"{_mean_std(value['error'])} ({len(value['per_label_set'])})",
                    f"{_mean_std(gain['gain'])}{ahead}" if gain else "–",
                ]
            )
        text += markdown_table(["row", "test error %", "gain over supervised-only"], rows) + "\n"
        text += "![gain against the pile's size](pile-size.png)\n\n![test error by pile](pile-curves.png)\n\n"
    decode = result.get("decode")
    if decode:
        text += (
            f"**Reading the pile.** {decode['images']:,} JPEG files of 32 x 32 decoded in {decode['seconds']} s on one "
            f"core ({decode['per_second']:,} images a second), held as a {decode['tensor_mib']} MiB uint8 tensor (the "
            f"process's peak memory grew by {decode['peak_memory_growth_mib']} MiB while reading). "
            + _stamp(decode, decode["command"])
            + "\n"
        )
    return text + result.get("notes", "") + "\n"


SECTIONS = [
    ("## The demo under several CPU kernel sets", "demo", demo_section),
    ("## Defaults for a user's own data", "defaults", defaults_section),
    ("## 1. Accuracy: the paper's Table 2 at CPU scale, on real CIFAR-10", "accuracy", accuracy_section),
    ("## Mean Teacher + VAT at CPU scale", "vat", vat_section),
    ("## 2. Speed: one table, one run, ratios", "speed", speed_section),
    ("## EMA update cost", "ema", ema_section),
    ("## Loading the CIFAR-10 JPEG archive", "data_load", data_section),
    ("## Image size for a folder of photos", "image_size", image_size_section),
    ("## Flips for colour photos", "flip", flip_section),
    ("## The photo folder's recipe, chosen on validation", "photo_recipe", photo_recipe_section),
    ("## A folder of photos trained for a time", "photos", photos_section),
    ("## Confident pseudo-labels on the photo folder at 10 minutes", "photos_pseudo", photos_section),
    ("## The strong view's and TensorBoard's cost", "views", views_section),
    ("## bf16 on a CPU without bf16 in hardware", "precision", precision_section),
    ("## A weak teacher and a strong student at CPU scale (trained on a GPU)", "strong", strong_section),
    ("## Confident pseudo-labels at CPU scale", "pseudo", pseudo_section),
    ("## What a larger unlabeled pile buys", "pile", pile_section),
    ("## Which images to label next", "label_next", label_next_section),
    ("## 3. GPU: achieved TFLOP/s of the paper-scale step", "throughput", throughput_section),
]
"""Each section: its heading, the JSON file in docs/bench/ it is written from, and the function writing its body."""


def section(heading: str, name: str, body: Callable[[dict], str]) -> str:
    """A section's heading and its body from ``docs/bench/NAME.json``, or where that benchmark has not
    been run, a line saying so."""
    result = _load(name)
    if result is None:
        return f"{heading}\n\nNot measured yet (`python -m benchmarks.{name} --json docs/bench/{name}.json` measures it).\n"
    return f"{heading}\n\n" + body(result)


def main() -> int:
    parts = [
        "# Benchmarks\n\nWritten by `python -m benchmarks.document` from the JSON files in `docs/bench/`; "
        "every figure names the command that measured it, the machine and the date. Timings on these "
        "machines are noisy, so speed is given as ratios measured side by side in one process, and as "
        "medians of several repeats.\n",
        *(section(heading, name, body) for heading, name, body in SECTIONS),
    ]
    (DOCS / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote {DOCS / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
