"""``meanteacher demo``: supervised-only and Mean Teacher side by side on the built-in digits."""

from __future__ import annotations

from pathlib import Path

from .config import apply_settings, load_preset
from .files import atomic_write_text
from .report import aggregate, plot_comparison
from .train import train

DEMO_PRESET = "demo-digits"


def run_demo(out: Path, steps: int | None = None, progress: bool = True) -> str:
    """Train both methods with the demo preset, print and write a table and a plot; returns the table."""
    base = load_preset(DEMO_PRESET)
    if steps is not None:  # keep the schedule's shape: ramps and evaluations scale with the length
        scale = steps / base.steps
        scaled = {key: max(1, round(getattr(base, key) * scale)) for key in ("rampup_steps", "rampdown_steps", "eval_every", "checkpoint_every")}
        base = apply_settings(base, {"steps": steps, **scaled}, "--steps")
    summaries = {}
    for method in ("supervised", "mean-teacher"):
        config = apply_settings(base, {"method": method}, "demo")
        print(f"training {method} on {config.dataset} with {config.labels} labels for {config.steps} steps ...", flush=True)
        summaries[method] = train(config, out / method, progress=progress)
    table = aggregate(list(summaries.values()))
    atomic_write_text(out / "results.md", table)
    plot_comparison({m: out / m for m in summaries}, out / "demo.png", f"{base.dataset}, {base.labels} labels")
    print()
    print(table, end="")
    supervised = summaries["supervised"]["student_error"]
    teacher = summaries["mean-teacher"]["teacher_error"]
    print(f"\nMean Teacher's teacher: {teacher:.2%} test error vs supervised-only {supervised:.2%} with the same labels.")
    print(f"Table: {out / 'results.md'}   Plot: {out / 'demo.png'}")
    return table
