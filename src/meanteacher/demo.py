"""``meanteacher demo``: supervised-only and Mean Teacher side by side on the built-in digits, over
several label sets."""

from __future__ import annotations

from pathlib import Path

from .config import apply_settings
from .config.toml import load_preset
from .data.sources import load_dataset
from .files import atomic_write_text
from .report import aggregate, mean_std, plot_comparison
from .run.rundir import RunDirectory
from .run.train import Trainer

DEMO_PRESET = "demo-digits"
DEMO_SEEDS = (0, 1, 2)
"""One run per method and seed; a seed picks the labeled images, the batches and the noise."""
DEMO_METHODS = ("supervised", "mean-teacher")


def run_demo(out: Path, steps: int | None = None, seeds: tuple[int, ...] = DEMO_SEEDS, progress: bool = True) -> str:
    """Train both methods once per seed with the demo preset, print and write a table (mean ± std over
    the seeds) and a plot (mean curve and spread); returns the table."""
    base = load_preset(DEMO_PRESET)
    if steps is not None:  # keep the schedule's shape: ramps and evaluations scale with the length
        scale = steps / base.steps
        scaled = {
            key: max(1, round(getattr(base, key) * scale))
            for key in ("rampup_steps", "rampdown_steps", "eval_every", "checkpoint_every")
        }
        base = apply_settings(base, {"steps": steps, **scaled}, "--steps")
    dataset = load_dataset(base.dataset)
    summaries = {method: [] for method in DEMO_METHODS}
    run_dirs = {method: [] for method in DEMO_METHODS}
    for seed in seeds:
        for method in DEMO_METHODS:
            config = apply_settings(base, {"method": method, "seed": seed}, "demo")
            run_dir = out / f"{method}-s{seed}"
            RunDirectory(run_dir).prepare(resume=False)
            print(
                f"training {method} on {config.dataset}, {config.labels} labels (label set {seed}), {config.steps} steps ...",
                flush=True,
            )
            summaries[method].append(Trainer(config, run_dir, progress=progress, dataset=dataset).run())
            run_dirs[method].append(run_dir)
    table = aggregate([summary for runs in summaries.values() for summary in runs])
    atomic_write_text(out / "results.md", table)
    title = f"{base.dataset}, {base.labels} labels, {len(seeds)} label sets: EMA weights (Mean Teacher's teacher)"
    plot_comparison(run_dirs, out / "demo.png", title)
    print()
    print(table, end="")
    teacher = mean_std([s["ema_error"] for s in summaries["mean-teacher"]])
    supervised = mean_std([s["ema_error"] for s in summaries["supervised"]])
    print(
        f"\nMean Teacher's teacher: {100 * teacher[0]:.1f} ± {100 * teacher[1]:.1f} % test error vs supervised-only "
        f"{100 * supervised[0]:.1f} ± {100 * supervised[1]:.1f} % (both on EMA weights; mean ± std over {len(seeds)} label sets)."
    )
    print(f"Table: {out / 'results.md'}   Plot: {out / 'demo.png'}")
    return table
