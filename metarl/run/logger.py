"""TensorBoard logging with metarl's tag scheme, adaptation-curve figures, and the files of
an evaluation (JSON report and PNG plot).

Tags: ``adaptation/…`` (adaptation curves of the training tasks: one scalar per episode
index, inner step or shot count), ``eval/…`` (held-out results, curve included),
``train/…`` (losses and statistics), ``time/…`` (throughput). A custom-scalar layout
puts each curve on one chart.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # runs write figures without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from metarl.core.agent import EvalResult  # noqa: E402
from metarl.core.stats import mean_ci95  # noqa: E402

MAX_CURVE_POINTS = 10
"""Curves longer than this (a bandit's 100 pulls) are logged as this many buckets."""


def curve_points(result: EvalResult, max_points: int = MAX_CURVE_POINTS) -> list[tuple[str, float]]:
    """(tag suffix, mean) pairs of an adaptation curve, bucketed when it is long.

    A curve over ``x = 1..100`` becomes ten buckets, ``return_episode_1-10`` … each the
    mean per-episode value inside the bucket, so TensorBoard shows a readable curve.
    """
    means = result.curve.mean(axis=0)
    stem = f"{result.curve_name}_{result.x_name}"
    if len(result.x) <= max_points:
        return [(f"{stem}_{x}", float(m)) for x, m in zip(result.x, means, strict=True)]
    edges = np.linspace(0, len(result.x), max_points + 1).round().astype(int)
    return [
        (f"{stem}_{result.x[a]:03d}-{result.x[b - 1]:03d}", float(means[a:b].mean()))
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]


def plot_curve(result: EvalResult, title: str, path: str | os.PathLike | None = None) -> plt.Figure:
    """A figure of the adaptation curve with its 95% confidence band; saved if ``path``."""
    means, cis = mean_ci95(result.curve)
    x = np.asarray(result.x)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.plot(x, means, marker="o" if len(x) <= 20 else None, lw=1.6)
    ax.fill_between(x, means - cis, means + cis, alpha=0.25, lw=0)
    ax.set_xlabel(result.x_name.replace("_", " "))
    ax.set_ylabel(f"mean {result.curve_name.replace('_', ' ')}")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def write_eval(result: EvalResult, report: dict[str, Any], json_path: Path, png_path: Path, title: str) -> None:
    """Write an evaluation's JSON report and PNG plot."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    plt.close(plot_curve(result, title, png_path))


def flatten_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, float | int | str | bool]:
    """A nested config as the flat ``{"section.name": value}`` the HParams plugin takes:
    numbers, strings and booleans as they are, anything else (lists, None) as its JSON text."""
    flat: dict[str, float | int | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_hparams(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


class RunLogger:
    """A TensorBoard writer that knows metarl's tags and curve layout."""

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter  # imported late: pulls in tensorboard

        self.log_dir = Path(log_dir)
        if purge_step is not None:
            # TensorBoard reads a run's event files in name order, and names start with the
            # second they were opened in: a resumed run's file must sort after the last one, or
            # its purge of the steps after the checkpoint would erase the steps before it.
            opened = [int(p.name.split(".")[3]) for p in self.log_dir.glob("events.out.tfevents.*")]
            while opened and int(time.time()) <= max(opened):
                time.sleep(0.05)
        self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)
        self._layout_written = False

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write namespaced scalars (``train/loss`` …) at ``step``."""
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def curve(self, result: EvalResult, prefix: str, step: int, title: str = "") -> None:
        """Write one adaptation curve: a scalar per point and a figure of the whole."""
        self._write_layout(result)
        for suffix, value in curve_points(result):
            self.writer.add_scalar(f"{prefix}/{suffix}", value, step)
        fig = plot_curve(result, title or f"{prefix}: step {step}")
        self.writer.add_figure(f"{prefix}/curve", fig, step)
        plt.close(fig)

    def _write_layout(self, result: EvalResult) -> None:
        if self._layout_written:
            return
        stem = f"{result.curve_name}_{result.x_name}"
        self.writer.add_custom_scalars(
            {
                "adaptation curves": {
                    f"training tasks: {stem}": ["Multiline", [rf"adaptation/{stem}_.*"]],
                    f"held-out tasks: {stem}": ["Multiline", [rf"eval/{stem}_.*"]],
                    f"out-of-distribution tasks (--eval-ood): {stem}": ["Multiline", [rf"eval_ood/{stem}_.*"]],
                },
                "evaluation": {
                    "score": ["Margin", ["eval/score", "eval/score_lo", "eval/score_hi"]],
                    "held-out and out-of-distribution score": ["Multiline", [r"eval(_ood)?/score$"]],
                },
            }
        )
        self._layout_written = True

    def hparams(self, config: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """Record a run's settings and final metrics for TensorBoard's HParams tab.

        ``config`` is flattened (``agent.lr``, ``family.k``, ...); the metrics are also written as
        scalars under ``hparams/``, the tags the HParams tab reads them from. Written into the
        run's own event files (``SummaryWriter.add_hparams`` would make a second run directory).
        """
        from torch.utils.tensorboard.summary import hparams

        tags = {f"hparams/{name}": float(value) for name, value in metrics.items()}
        self.scalars(tags, step)
        writer = self.writer._get_file_writer()
        for summary in hparams(flatten_hparams(config), tags):
            writer.add_summary(summary)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """Write a text summary (e.g. the resolved config)."""
        self.writer.add_text(tag, text, step)

    def close(self) -> None:
        """Flush and close the writer."""
        self.writer.close()


def read_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """All scalar series in a run directory's event files, as ``{tag: [(step, value)]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, Any] = {}
    for tag in acc.Tags()["scalars"]:
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


class SilentLogger(RunLogger):
    """The logger of the data-parallel processes other than rank 0: rank 0 alone writes the
    run's TensorBoard files (every process computes the same figures)."""

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None):
        self.log_dir = Path(log_dir)

    def scalars(self, values: dict[str, float], step: int) -> None:
        pass

    def curve(self, result: EvalResult, prefix: str, step: int, title: str = "") -> None:
        pass

    def hparams(self, config: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        pass

    def text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def close(self) -> None:
        pass
