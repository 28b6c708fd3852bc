"""``python -m metarl.plot``: the curves of several runs in one figure, grouped by algorithm.

    python -m metarl.plot runs/*Nav2D* --out nav2d.png
    python -m metarl.plot runs/A runs/B eval/thompson.json --out bandit.png

Each argument is a run directory (its ``eval/final_test.json`` and TensorBoard events) or an
evaluation report (``python -m metarl.evaluate ... --json FILE``). The figure has one panel per
kind of adaptation curve among them (return per episode of a trial for RL² and the SB3
baselines, return per inner step for MAML-PG, return against environment steps for policies
trained from scratch) and, when runs evaluated on held-out tasks during training, a panel of
learning curves (held-out score against training environment steps). Each run is one line
with its 95% band; runs of the same algorithm (and mode) share a colour and a legend entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metarl.core.errors import UsageError
from metarl.run.config import run_cli
from metarl.run.logger import plt, read_scalars

PROG = "python -m metarl.plot"


def load_report(path: Path) -> tuple[dict[str, Any], Path | None]:
    """The evaluation report a path names (a run directory's ``eval/final_test.json``, or a
    report file) and the run directory, if it is one."""
    run_dir = path if path.is_dir() else None
    file = path / "eval" / "final_test.json" if run_dir is not None else path
    if not file.is_file():
        what = "a run directory without eval/final_test.json (did the run finish?)" if run_dir else "no such file"
        raise UsageError(f"{path}: {what}; give run directories or JSON reports of python -m metarl.evaluate")
    try:
        report = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{file}: not a JSON report ({exc})") from exc
    missing = [k for k in ("algo", "x_name", "curve_name", "curve") if k not in report]
    if missing:
        raise UsageError(f"{file}: not an evaluation report (no {', '.join(missing)})")
    return report, run_dir


def label(report: dict[str, Any]) -> str:
    """The group a run belongs to: its algorithm, with the SB3 baselines' mode."""
    name = str(report["algo"])
    mode = report.get("mode")
    if mode:
        name += f" ({mode}{', recurrent' if report.get('recurrent') else ''})"
    return name


def learning_curve(run_dir: Path) -> tuple[list[int], list[float], list[float], list[float]] | None:
    """Held-out score (mean, lower, upper) against training steps from a run's TensorBoard
    events; None with fewer than two evaluations."""
    scalars = read_scalars(run_dir)
    points = scalars.get("eval/score", [])
    if len(points) < 2:
        return None
    lo, hi = dict(scalars.get("eval/score_lo", [])), dict(scalars.get("eval/score_hi", []))
    steps = [s for s, _ in points]
    means = [v for _, v in points]
    return steps, means, [lo.get(s, m) for s, m in zip(steps, means, strict=True)], \
        [hi.get(s, m) for s, m in zip(steps, means, strict=True)]


def plot_runs(paths: Sequence[str | Path], out: str | Path | None = None, title: str = "") -> plt.Figure:
    """A figure of the runs' adaptation curves (and learning curves) with 95% bands; saved to
    ``out`` if given."""
    if not paths:
        raise UsageError("give at least one run directory or JSON report")
    loaded = [load_report(Path(p)) for p in paths]
    groups = list(dict.fromkeys(label(r) for r, _ in loaded))
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    kinds = list(dict.fromkeys((r["x_name"], r["curve_name"]) for r, _ in loaded))
    learning: dict[int, tuple[list[int], list[float], list[float], list[float]]] = {}
    for i, (_, run_dir) in enumerate(loaded):
        curve = learning_curve(run_dir) if run_dir is not None else None
        if curve is not None:
            learning[i] = curve
    panels = len(kinds) + (1 if learning else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.8), dpi=110, squeeze=False)
    for ax, (x_name, curve_name) in zip(axes[0], kinds, strict=False):
        shown: set[str] = set()
        for report, _ in loaded:
            if (report["x_name"], report["curve_name"]) != (x_name, curve_name):
                continue
            group = label(report)
            xs = [p["x"] for p in report["curve"]]
            means = [p["mean"] for p in report["curve"]]
            cis = [p["ci95"] if p["ci95"] != float("inf") else 0.0 for p in report["curve"]]
            ax.plot(xs, means, color=colours[group], lw=1.5, marker="o" if len(xs) <= 20 else None, ms=3,
                    label=None if group in shown else group)
            ax.fill_between(xs, [m - c for m, c in zip(means, cis, strict=True)],
                            [m + c for m, c in zip(means, cis, strict=True)], color=colours[group], alpha=0.2, lw=0)
            shown.add(group)
        ax.set_xlabel(x_name.replace("_", " "))
        ax.set_ylabel(f"mean {curve_name.replace('_', ' ')}")
        ax.set_title(f"adaptation: {curve_name.replace('_', ' ')} per {x_name.replace('_', ' ')}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if learning:
        ax = axes[0][-1]
        shown = set()
        for i, (steps, means, lows, highs) in learning.items():
            group = label(loaded[i][0])
            ax.plot(steps, means, color=colours[group], lw=1.5, label=None if group in shown else group)
            ax.fill_between(steps, lows, highs, color=colours[group], alpha=0.2, lw=0)
            shown.add(group)
        ax.set_xlabel("training environment steps")
        ax.set_ylabel("held-out score")
        ax.set_title("learning curves (held-out score)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    families = sorted({str(r.get("family", "")) for r, _ in loaded})
    fig.suptitle(title or ", ".join(families), fontsize=10)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out)
    return fig


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, draw the figure, print where it went."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or JSON reports of python -m metarl.evaluate")
    parser.add_argument("--out", default="curves.png", help="where to write the PNG (default: curves.png)")
    parser.add_argument("--title", default="", help="the figure's title (default: the families)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    plt.close(plot_runs(args.runs, args.out, args.title))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cli() -> None:
    """The console script ``metarl-plot``: :func:`main` with the CLI's error handling."""
    run_cli(main)


if __name__ == "__main__":
    cli()
