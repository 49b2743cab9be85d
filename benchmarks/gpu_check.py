"""One-shot check of the CUDA path on a GPU machine, with every result written under one folder.

    bash benchmarks/gpu_check.sh --out DIR [--data cifar10-jpeg.tar.gz] [--budget 480]
    bash benchmarks/gpu_check.sh --paper --out DIR --data cifar10-jpeg.tar.gz [--runs .gpu-check/paper]
    bash benchmarks/gpu_check.sh --dry-run --out DIR        # the plumbing on a CPU, tiny sizes, < 1 min

It needs no pip and no network: the package runs from ``src/`` on whatever PyTorch (>= 2.4) the
machine has. Each phase runs in a process group of its own under its own time limit (killed whole
past it), with an estimate of its time printed beside the time it took, and no phase starts after the
budget is spent; results and output are written as they come (``DIR/log.txt``, ``DIR/phases.json``,
``DIR/gpu.json``), and a short table is printed last. Phases:

- ``environment``: device, driver, PyTorch and CUDA versions; the bf16 matmul ceiling and copy bandwidth;
- ``tests``: ``tests/test_gpu.py``;
- ``equality``: the captured step against the same arithmetic run eagerly, 30 steps per method;
- ``throughput``: full-width ConvNet-13, batch 100, supervised-only and Mean Teacher, per mode:
  ms/step, images/s, achieved TFLOP/s, share of the bf16 peak, peak memory;
- ``cifar``: a CIFAR-10 Mean Teacher run of up to 4000 steps (as many as the throughput phase's step says
  fit), eager and with CUDA graphs (needs ``--data``); each run's networks evaluated on 1,000 test images;
- ``cpu-read``: a process that sees no GPU evaluates the GPU-written runs from their checkpoints on the
  same 1,000 images;
- ``compile``: throughput with ``torch.compile``, alone and inside the captured step (slowest: last).

``--paper`` instead trains the ``cifar10-4000`` Mean Teacher and supervised-only presets side by side
on one GPU until the budget ends, then reports how far they got. Run it again on the same machine and
the runs resume from their checkpoints (in ``--runs``, outside ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

from .common import today

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("supervised", "mean-teacher")
EQUALITY_METHODS = ("mean-teacher", "supervised", "pi", "temporal-ensembling")
BF16 = {"precision": "bf16", "channels_last": True}
THROUGHPUT_MODES = {
    "eager fp32": {},
    "eager bf16+channels_last": BF16,
    "graphs bf16+channels_last": {**BF16, "cuda_graphs": True},
    "graphs fp32": {"cuda_graphs": True},
}
COMPILE_MODES = {
    "compile bf16+channels_last": {**BF16, "compile": True},
    "compile+graphs bf16+channels_last": {**BF16, "compile": True, "cuda_graphs": True},
}
PHASES = {  # name: the longest it may take on one H100, seconds
    "environment": 45,
    "tests": 100,
    "equality": 80,
    "throughput": 80,
    "cifar": 150,
    "cpu-read": 45,
    "compile": 150,
}
ESTIMATES = {  # name: (seconds on one H100, what the estimate counts)
    "environment": (20, "CUDA start, a bf16 matmul of 8192 and a 1 GiB copy, 10 repeats each"),
    "tests": (60, "tests/test_gpu.py: 14 tests of at most 30 steps of a narrow network"),
    "equality": (40, "4 methods x 3 runs x 30 steps of a narrow network, captured and eager"),
    "throughput": (50, "2 methods x 4 modes x 150 timed steps, each mode built and warmed up"),
    "cifar": (
        120,
        "decoding 60,000 JPEGs at 3,244 a second on one core, then 2 runs sized from the throughput "
        "phase's step to fit the limit (CIFAR_STEPS at most), each evaluated 25 times",
    ),
    "cpu-read": (20, "2 runs x 2 networks x 1,000 test images of the full-width network in fp32 on the CPU"),
    "compile": (120, "2 methods x 2 modes of torch.compile, each compiled then timed"),
}
CIFAR_STEPS = 4000
"""The most steps of each CIFAR-10 run (fewer when the throughput phase's step says they would not fit)."""
CPU_READ_IMAGES = 1000
"""Test images the GPU and a CPU process both evaluate from each run's checkpoint: enough to compare them,
few enough for a CPU (the full 10,000 through two full-width networks of two runs are about 58 TFLOP)."""
PAPER_PRESETS = {"mean-teacher": "cifar10-4000", "supervised": "cifar10-4000-supervised"}
PAPER_SETTINGS = ["precision=bf16", "channels_last=true", "cuda_graphs=true", "checkpoint_seconds=30"]


# ---------------------------------------------------------------- results under --out


def _update_json(path: Path, key: str, value: object) -> None:
    """Set ``key`` in the JSON object in ``path`` (a killed phase keeps what it had written)."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)


def _device(dry_run: bool) -> str:
    return "cpu" if dry_run else "cuda"


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------- phases (each in its own process)


def phase_environment(args: argparse.Namespace) -> None:
    info = {
        "date": today(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(
            device=properties.name,
            memory_gib=round(properties.total_memory / 2**30, 1),
            multiprocessors=properties.multi_processor_count,
        )
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
    else:
        info["device"] = "cpu"
    size = 512 if args.dry_run else 8192
    device = _device(args.dry_run)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn_like(a)
    info["bf16_matmul_tflops"] = float(f"{2 * size**3 / _median_seconds(lambda: a @ b) / 1e12:.3g}")
    source = torch.empty(2**30 if not args.dry_run else 2**24, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    info["copy_gb_per_s"] = round(2 * source.numel() / _median_seconds(lambda: target.copy_(source)) / 1e9, 1)
    print(json.dumps(info, indent=1))
    _update_json(args.out / "gpu.json", "environment", info)


def _median_seconds(run, repeats: int = 10) -> float:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        _synchronize()
        start = time.perf_counter()
        run()
        _synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def phase_tests(args: argparse.Namespace) -> None:
    report = args.out / "pytest.txt"
    with open(report, "w") as stream:  # written as it comes: a phase killed at its limit leaves its record
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "tests/test_gpu.py"],
            cwd=ROOT,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    output = report.read_text()
    print(output[-3000:])
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    _update_json(args.out / "gpu.json", "tests", {"returncode": result.returncode, "summary": summary})
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def _small(args: argparse.Namespace) -> dict:
    """Sizes of the dry run: a narrow network, small batches, fewer labels."""
    return {"arch_options": {"width": 0.125}, "batch_size": 20, "labels": 1000} if args.dry_run else {}


def phase_equality(args: argparse.Namespace) -> None:
    from meanteacher.config.toml import load_preset
    from meanteacher.run.train import Trainer
    from meanteacher.teacher import unwrap

    from .throughput import synthetic_cifar

    steps = 3 if args.dry_run else 30
    dataset = synthetic_cifar(images=2000)
    schedule = {
        "steps": steps,
        "rampup_steps": steps // 2,
        "rampdown_steps": steps // 2,
        "ema_decay_rampup": 0.9,
        "ema_decay": 0.99,
        "adam_beta2_rampup": 0.99,
        "consistency": 8.0,
        "labels": 1000,
        "normalize": "standardize",
        "deterministic": True,
        "device": _device(args.dry_run),
        "dataset": "synthetic",
        **_small(args),
    }
    methods = EQUALITY_METHODS[:2] if args.dry_run else EQUALITY_METHODS

    def build(method, folder, **settings):
        config = load_preset("cifar10-4000")
        for name, value in {**schedule, "method": method, **settings}.items():
            setattr(config, name, value)
        trainer = Trainer(config, folder, progress=False, dataset=dataset)
        trainer.training_step.method.model.train()
        return trainer

    def state(trainer):
        return list(unwrap(trainer.training_step.model).state_dict().values()) + list(
            trainer.training_step.method.ema.module.state_dict().values()
        )

    def largest(a, b):
        return max(float((x.double() - y.double()).abs().max()) for x, y in zip(state(a), state(b), strict=True))

    scratch = args.out / "scratch-equality"
    for method in methods:
        entry: dict = {}
        try:
            twin = build(method, scratch / f"{method}-twin", device_schedules=True)
            plain = build(method, scratch / f"{method}-plain")
            graphed = None if args.dry_run else build(method, scratch / f"{method}-graph", cuda_graphs=True)
            graph_vs_twin, twin_vs_plain = [], []
            for _step in range(steps):
                twin.step()
                plain.step()
                twin_vs_plain.append(largest(twin, plain))
                if graphed is not None:
                    graphed.step()
                    graph_vs_twin.append(largest(graphed, twin))
            entry = {"steps": steps, "twin_vs_default_eager_final": twin_vs_plain[-1]}
            if graphed is not None:
                entry.update(
                    captured=graphed.training_step.optimize.graph is not None,
                    graph_vs_twin_max=max(graph_vs_twin),
                    first_differing_step=next((i for i, d in enumerate(graph_vs_twin) if d > 0), None),
                )
        except Exception as error:  # noqa: BLE001 - written down, and the next method still runs
            entry = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"}
        print(method, json.dumps(entry), flush=True)
        _update_json(args.out / "gpu.json", f"equality/{method}", entry)
    shutil.rmtree(scratch, ignore_errors=True)


def _throughput(args: argparse.Namespace, modes: dict[str, dict]) -> None:
    from .throughput import flops_per_step, make_trainer, peak_bf16_tflops, seconds_per_step, synthetic_cifar

    device = torch.device(_device(args.dry_run))
    dataset = synthetic_cifar(images=2000 if args.dry_run else 50_000)
    peak = peak_bf16_tflops(device)
    repeats, block, warmup = (2, 1, 1) if args.dry_run else (7, 20, 10)
    scratch = args.out / "scratch-throughput"
    scratch.mkdir(parents=True, exist_ok=True)
    for method in METHODS:
        flops = flops_per_step(
            make_trainer(dataset, method, "cpu" if args.dry_run else "cuda", scratch, **_small(args))
        )
        for mode, settings in modes.items():
            if args.dry_run and (settings.get("cuda_graphs") or settings.get("compile")):
                continue  # CUDA graphs need a GPU; compiling on a CPU takes minutes
            entry: dict = {"method": method, "mode": mode, "gflop_per_step": round(flops / 1e9, 1)}
            try:
                trainer = make_trainer(dataset, method, str(device), scratch, **settings, **_small(args))
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                seconds = seconds_per_step(trainer, repeats, block, warmup)
                entry.update(
                    step_ms=round(seconds * 1e3, 3),
                    images_per_s=round(trainer.config.batch_size / seconds),
                    tflops=round(flops / seconds / 1e12, 2),
                )
                if peak:
                    entry["share_of_bf16_peak"] = round(flops / seconds / 1e12 / peak, 4)
                if device.type == "cuda":
                    entry["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                    entry["captured"] = getattr(trainer.training_step.optimize, "graph", None) is not None
                del trainer
            except Exception as error:  # noqa: BLE001 - written down, and the next mode still runs
                entry["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
            print(json.dumps(entry), flush=True)
            _update_json(args.out / "gpu.json", f"throughput/{method}/{mode}", entry)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    shutil.rmtree(scratch, ignore_errors=True)


def phase_throughput(args: argparse.Namespace) -> None:
    _throughput(args, THROUGHPUT_MODES)


def phase_compile(args: argparse.Namespace) -> None:
    _throughput(args, COMPILE_MODES)


def cifar_steps(results: dict, limit: float) -> tuple[int, str]:
    """Steps of each CIFAR-10 run: ``CIFAR_STEPS``, or fewer where two runs at the throughput phase's eager
    bf16 Mean Teacher step (three times it, for data, evaluations and checkpoints) would not fit ``limit``
    after the decode; and the estimate's words."""
    entry = results.get("throughput/mean-teacher/eager bf16+channels_last", {})
    if "step_ms" not in entry:
        return CIFAR_STEPS, "no throughput measured: the full steps"
    decode = 60_000 / 3244
    fits = int((limit - decode) / 2 / (3 * entry["step_ms"] / 1e3))
    steps = max(100, min(CIFAR_STEPS, fits))
    return steps, f"{entry['step_ms']} ms a step (x3 with data and evaluations), {decode:.0f} s decode: {steps} steps"


def _cifar_command(args: argparse.Namespace, out: Path, graphs: bool, steps: int) -> list[str]:
    if args.dry_run:
        command = [
            "train",
            "--data",
            "digits",
            "--labels",
            "50",
            "--steps",
            "20",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--set",
            "arch_options.width=0.125",
            "--set",
            "arch_options.pools=1",
        ]  # fp32 as cpu-read evaluates
    else:
        command = [
            "train",
            "--data",
            str(args.data),
            "--labels",
            "4000",
            "--steps",
            str(steps),
            "--device",
            "cuda",
            "--precision",
            "bf16",
            "--set",
            "channels_last=true",
            "--set",
            "flip=true",
            "--seed",
            "1",
        ]
    if graphs:
        command += ["--set", "cuda_graphs=true"]
    return [sys.executable, "-m", "meanteacher", *command, "--out", str(out), "--quiet"]


def subset_errors(run_dir: Path, device: str) -> dict:
    """Both networks of a run, read from its checkpoint, evaluated in fp32 on ``device`` on the first
    ``CPU_READ_IMAGES`` test images of its dataset."""
    from meanteacher.data.sources import load_dataset
    from meanteacher.inference import load_run
    from meanteacher.run.evaluation import evaluate

    run = load_run(run_dir)
    config = run.config
    dataset = load_dataset(config.dataset, config.test_data or None, image_size=config.image_size)
    models = {name: model.to(device) for name, model in run.models.items()}
    images = run.normalizer.prepare(dataset.test_images[:CPU_READ_IMAGES]).to(device)
    labels = dataset.test_labels[:CPU_READ_IMAGES].to(device)
    results = evaluate(models, images, labels, run.normalizer, config.eval_batch_size, "fp32")
    return {f"{name}_error": results[f"{name}_error"] for name in models} | {"images": len(labels)}


def phase_cifar(args: argparse.Namespace) -> None:
    if not args.dry_run and not args.data:
        raise SystemExit("no --data: the CIFAR-10 runs need the archive (cifar10-jpeg.tar.gz)")
    results = json.loads((args.out / "gpu.json").read_text()) if (args.out / "gpu.json").is_file() else {}
    steps, basis = cifar_steps(results, PHASES["cifar"])
    print(f"cifar: {basis}", flush=True)
    for name, graphs in (("eager", False), ("graphs", True)):
        if graphs and args.dry_run:
            continue
        run_dir = args.out / "runs" / name
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(args.out / "runs" / f"{name}.log", "w") as log:  # streamed: a killed phase keeps its output
            result = subprocess.run(
                _cifar_command(args, run_dir, graphs, steps), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        entry = {
            "returncode": result.returncode,
            "wall_s": round(time.perf_counter() - started, 1),
            "planned_steps": steps,
        }
        if result.returncode == 0:
            summary = json.loads((run_dir / "summary.json").read_text())
            entry.update(
                {
                    key: summary.get(key)
                    for key in (
                        "steps",
                        "ema_error",
                        "student_error",
                        "train_seconds",
                        "eval_seconds",
                        "checkpoint_seconds",
                        "images_per_second",
                    )
                }
            )
            entry["subset"] = subset_errors(run_dir, _device(args.dry_run))
        else:
            lines = (args.out / "runs" / f"{name}.log").read_text().strip().splitlines()
            entry["error"] = (lines or ["?"])[-1][:300]
        print(name, json.dumps(entry), flush=True)
        _update_json(args.out / "gpu.json", f"cifar/{name}", entry)


def phase_cpu_read(args: argparse.Namespace) -> None:
    """In a process that sees no GPU: each GPU-written run's networks from its checkpoint, on the test
    images the cifar phase evaluated them on the GPU."""
    runs = sorted(p for p in (args.out / "runs").glob("*") if (p / "checkpoint.pt").is_file())
    if not runs:
        raise SystemExit("no run with a checkpoint to read (the cifar phase writes them)")
    for run_dir in runs:
        entry: dict = subset_errors(run_dir, "cpu")
        print(run_dir.name, json.dumps(entry), flush=True)
        _update_json(args.out / "gpu.json", f"cpu_read/{run_dir.name}", entry)
        (run_dir / "checkpoint.pt").unlink()  # too large to bring back; summary, metrics and curves stay


PHASE_FUNCTIONS = {
    "environment": phase_environment,
    "tests": phase_tests,
    "equality": phase_equality,
    "throughput": phase_throughput,
    "cifar": phase_cifar,
    "cpu-read": phase_cpu_read,
    "compile": phase_compile,
}


# ---------------------------------------------------------------- the paper-scale runs


def paper(args: argparse.Namespace) -> int:
    """Both presets side by side until the budget ends; each resumes if its run directory has a checkpoint."""
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    processes = {}
    log = open(args.out / "log.txt", "a")
    for method, preset in PAPER_PRESETS.items():
        run_dir = runs / method
        if (run_dir / "checkpoint.pt").is_file():
            command = ["train", "--resume", str(run_dir)]
        elif args.dry_run:
            command = [
                "train",
                "--data",
                "digits",
                "--labels",
                "50",
                "--steps",
                "2000",
                "--method",
                method,
                "--device",
                "cpu",
                "--set",
                "arch_options.width=0.125",
                "--set",
                "arch_options.pools=1",
                "--set",
                "checkpoint_every=20",
                "--set",
                "eval_every=20",
                "--set",
                "checkpoint_seconds=1",
                "--out",
                str(run_dir),
            ]
        else:
            command = ["train", "--preset", preset, "--data", str(args.data), "--out", str(run_dir)]
            command += [part for setting in PAPER_SETTINGS for part in ("--set", setting)]
        processes[method] = subprocess.Popen(
            [sys.executable, "-m", "meanteacher", *command, "--quiet"],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + args.budget
    while time.monotonic() < deadline and any(p.poll() is None for p in processes.values()):
        time.sleep(1)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # resumes from its last checkpoint (30 s apart at most)
            process.wait()
    from meanteacher.report import plot_curves
    from meanteacher.run.rundir import RunDirectory, load_checkpoint

    for method in PAPER_PRESETS:
        run_dir = runs / method
        entry: dict = {"finished": (run_dir / "summary.json").is_file()}
        if (run_dir / "checkpoint.pt").is_file():
            state = load_checkpoint(run_dir / "checkpoint.pt")
            train_seconds = state["elapsed"] - state["eval_seconds"] - state["checkpoint_seconds"]
            total = json.loads((run_dir / "summary.json").read_text())["steps"] if entry["finished"] else None
            entry.update(steps=state["step"], seconds=round(state["elapsed"], 1), train_seconds=round(train_seconds, 1))
            if state["step"]:
                per_step = state["elapsed"] / state["step"]
                entry["full_run_hours_at_this_speed"] = round(
                    RunDirectory(run_dir).read_config().steps * per_step / 3600, 2
                )
                entry["steps_per_9_minutes"] = int(540 / per_step)
            if total:
                entry["steps"] = total
        lines = (
            [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
            if (run_dir / "metrics.jsonl").is_file()
            else []
        )
        if lines:
            last = json.loads(lines[-1])
            entry.update(
                evaluated_at=last["step"], ema_error=last.get("ema_error"), student_error=last.get("student_error")
            )
            plot_curves(run_dir / "metrics.jsonl", args.out / f"curves-{method}.png")
            shutil.copy(run_dir / "metrics.jsonl", args.out / f"metrics-{method}.jsonl")
        if entry["finished"]:
            shutil.copy(run_dir / "summary.json", args.out / f"summary-{method}.json")
        print(method, json.dumps(entry), flush=True)
        _update_json(args.out / "gpu.json", f"paper/{method}", entry)
    _update_json(
        args.out / "gpu.json",
        "paper/settings",
        {
            "presets": PAPER_PRESETS,
            "set": PAPER_SETTINGS,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "date": today(),
        },
    )
    return 0


# ---------------------------------------------------------------- the orchestration


def run_phase(command: list[str], limit: float, log, environment: dict | None = None) -> str:
    """Run one phase's command in a process group of its own, its output streamed into ``log``; past
    ``limit`` seconds the whole group is killed (pytest, training and evaluation processes it started
    included), so nothing of it goes on into the next phase."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
    )
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return f"timed out after {limit:.0f} s"
    with contextlib.suppress(ProcessLookupError):  # what the phase left running in the background
        os.killpg(process.pid, signal.SIGKILL)
    return "ok" if returncode == 0 else f"failed (exit {returncode})"


def run_phases(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.budget
    phases_path = args.out / "phases.json"
    failures = 0
    with open(args.out / "log.txt", "a") as log:
        for name, longest in PHASES.items():
            left = deadline - time.monotonic()
            estimate, basis = ESTIMATES[name]
            if left < 20:
                _update_json(phases_path, name, {"status": "skipped: out of time", "estimate_s": estimate})
                continue
            limit = min(longest * (3 if args.dry_run else 1), left)
            command = [sys.executable, "-m", "benchmarks.gpu_check", "--phase", name, "--out", str(args.out)]
            command += ["--dry-run"] if args.dry_run else []
            command += ["--data", str(args.data)] if args.data else []
            environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if name == "cpu-read" else None
            log.write(f"\n=== {name} (limit {limit:.0f} s; estimated {estimate} s: {basis})\n")
            log.flush()
            started = time.perf_counter()
            status = run_phase(command, limit, log, environment)
            seconds = round(time.perf_counter() - started, 1)
            failures += status != "ok"
            _update_json(
                phases_path, name, {"status": status, "seconds": seconds, "estimate_s": estimate, "estimate": basis}
            )
            print(f"{name:<12} {status} ({seconds:.0f} s; estimated {estimate} s)", flush=True)
    _pack_runs(args.out)
    print(table(args.out))
    return 1 if failures else 0


def _pack_runs(out: Path) -> None:
    """The run directories as one archive without checkpoints: few files to bring back."""
    runs = out / "runs"
    if runs.is_dir():
        with tarfile.open(out / "runs.tar.gz", "w:gz") as archive:
            archive.add(
                runs, arcname="runs", filter=lambda member: None if member.name.endswith("checkpoint.pt") else member
            )
        shutil.rmtree(runs)


def table(out: Path) -> str:
    """The short table printed last: phases, equality, throughput, CIFAR-10 runs."""
    results = json.loads((out / "gpu.json").read_text()) if (out / "gpu.json").is_file() else {}
    phases = json.loads((out / "phases.json").read_text()) if (out / "phases.json").is_file() else {}
    environment = results.get("environment", {})
    lines = [
        f"\n{environment.get('device', '?')}, torch {environment.get('torch', '?')}, CUDA {environment.get('cuda')}; "
        f"bf16 matmul {environment.get('bf16_matmul_tflops', '?')} TFLOP/s, copy {environment.get('copy_gb_per_s', '?')} GB/s"
    ]
    lines += [
        f"phase {name:<12} {entry['status']}"
        + (f" ({entry['seconds']} s" if "seconds" in entry else " (")
        + f"; estimated {entry.get('estimate_s', '?')} s)"
        for name, entry in phases.items()
    ]
    for key, entry in results.items():
        if key.startswith("equality/"):
            lines.append(f"{key:<36} " + ("; ".join(f"{k} {v}" for k, v in entry.items())))
        elif key.startswith("throughput/"):
            shown = entry.get("error") or (
                f"{entry['step_ms']} ms/step, {entry['images_per_s']} img/s, {entry['tflops']} TFLOP/s"
                + (f", {entry['share_of_bf16_peak']:.1%} of peak" if "share_of_bf16_peak" in entry else "")
            )
            lines.append(f"{key:<56} {shown}")
        elif key.startswith(("cifar/", "cpu_read/", "paper/")):
            lines.append(
                f"{key:<20} " + ", ".join(f"{k} {v}" for k, v in entry.items() if not isinstance(v, (dict, list)))
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for every result (created)")
    parser.add_argument("--data", type=Path, help="the CIFAR-10 archive (cifar10-jpeg.tar.gz) for the CIFAR-10 runs")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all phases together")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny sizes: checks the plumbing")
    parser.add_argument(
        "--paper", action="store_true", help="train the cifar10-4000 presets (Mean Teacher, supervised-only)"
    )
    parser.add_argument(
        "--runs", default=str(ROOT / ".gpu-check" / "paper"), help="run directories of --paper (kept for resuming)"
    )
    parser.add_argument("--phase", choices=list(PHASE_FUNCTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.dry_run and not torch.cuda.is_available() and args.phase != "cpu-read":
        print("gpu_check: no CUDA device here; --dry-run checks the plumbing on a CPU", file=sys.stderr)
        return 2
    if args.data and not args.data.is_file():
        print(f"gpu_check: {args.data}: no such file", file=sys.stderr)
        return 2
    if args.phase:
        PHASE_FUNCTIONS[args.phase](args)
        return 0
    if args.paper:
        if not args.dry_run and not args.data:
            print("gpu_check: --paper needs --data cifar10-jpeg.tar.gz", file=sys.stderr)
            return 2
        return paper(args)
    return run_phases(args)


if __name__ == "__main__":
    raise SystemExit(main())
