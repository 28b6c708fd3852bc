"""RL² ablation: which settings limit its learning within a fixed wall-clock budget (issue 15).

Each *cell* is a set of RL² settings (``key=value`` overrides of ``RL2Config``, comma-separated;
``default`` for none). Overrides apply to ``RL2Config``'s own defaults, not to a family's
``recommended`` settings, so records stay comparable when a recommendation changes; pass a
recommendation as a cell to measure it. Every cell is trained for ``--minutes`` per seed
through the library's own trainer (the family, agent, run directory and ``Trainer`` built as
``python -m metarl.train`` builds them), then scored on the run's ``--eval-tasks`` held-out test tasks. Cells with the same
seed are scored on the same tasks with the same evaluation seed, and the best classical policy
measured here (UCB1 on bandits, PSRL on tabular MDPs) is scored on them too, so differences
are paired per task.

    python experiments/rl2_ablation.py --minutes 3 --seeds 0 --family k=5,n=100 \\
        --cells default gamma=0.99 gamma=0.99,gae_lambda=0.95 cell=lstm --lock /tmp/bench.lock \\
        --out experiments/results/rl2_ablation.jsonl
    python experiments/rl2_ablation.py --table experiments/results/rl2_ablation.jsonl   # the table again
    python experiments/rl2_ablation.py --quick                                          # seconds: a smoke run

Every finished run is appended to ``--out`` as one JSON line (settings, seed, steps, seconds,
load averages before and after, per-task returns of the run, of the same weights under the other
evaluation and of the classical policy), so a sweep can run in several invocations (one lock
each) and the table is printed from all of them. With ``--lock``, each run (training and
scoring) holds an exclusive ``flock`` on that file, as ``flock FILE python ...`` would.

The table: per cell, the mean total return over seeds × tasks with its 95% CI (over the pooled
per-task returns: it covers the test tasks, not seed-to-seed variation, which the per-seed
column shows), the paired difference to the first cell and to the classical policy, the same
trained weights scored with the other evaluation (the most likely action where the cell
samples, sampled actions where it takes the mode) with its paired difference, environment
steps and steps per second.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.agents.rl2 import RL2, RL2Config
from metarl.core.registry import algo_spec, family_spec
from metarl.core.stats import mean_ci95
from metarl.run.checkpoint import config_json, new_run_dir
from metarl.run.config import RunConfig, family_default, from_dict
from metarl.run.trainer import Trainer

QUICK = {"env": "metarl/Bandit-v0", "family": "k=2,n=5", "minutes": 0.05, "eval_tasks": 50,
         "cells": ["num_trials=16,hidden_size=8", "num_trials=16,hidden_size=8,lr=0.05"]}
"""``--quick``: a two-armed bandit of 5 pulls, tiny nets, a few seconds of training per cell."""


REFERENCE = {"metarl/Bandit-v0": "ucb1", "metarl/TabularMDP-v0": "psrl"}
"""The best classical policy measured here per family (experiments/RESULTS.md), scored beside every run."""
REFERENCE_NAME = {"ucb1": "UCB1 (c 0.2)", "psrl": "PSRL"}


def parse_settings(text: str) -> dict[str, Any]:
    """``"gamma=0.99,cell=lstm"`` → ``{"gamma": 0.99, "cell": "lstm"}`` (values as JSON where they
    parse, e.g. numbers and ``true``/``false``, else strings); ``"default"`` → ``{}``."""
    if text in ("", "default"):
        return {}
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"a setting is key=value, got {item!r} in {text!r}")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


@contextlib.contextmanager
def locked(path: str | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (nothing without one)."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_cell(env_id: str, family_kwargs: dict[str, Any], settings: dict[str, Any], seed: int, minutes: float,
             env_steps: int | None, eval_tasks: int, logdir: str) -> dict[str, Any]:
    """Train RL² with ``settings`` for ``minutes`` (or until ``env_steps``, whichever comes first)
    and score it, and the family's classical reference, on the run's held-out tasks."""
    family = family_default(env_id, family_kwargs)
    family_id = family_spec(env_id).id
    config = from_dict(RL2Config, {"total_env_steps": env_steps or 10**12, **settings}, "the cell's settings")
    run = RunConfig(seed=seed, logdir=logdir, eval_every=0, eval_tasks=eval_tasks, time_limit=minutes * 60,
                    progress=False, compare=False, checkpoint_every=1e9)
    agent = RL2(config, family, seed=seed)
    run_dir = new_run_dir(run.logdir, family_id, RL2.name, seed)
    (run_dir / "config.json").write_text(config_json(RL2.name, family_id, family, config, run,
                                                     ["rl2_ablation.py"], []))
    trainer = Trainer(agent, RL2.name, family_id, run, run_dir)
    load_before = os.getloadavg()
    began = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        code = trainer.train()
    seconds = time.monotonic() - began
    if code != 0 or trainer.final_result is None:
        raise RuntimeError(f"the run of {settings} (seed {seed}) stopped with status {code}")
    # The same weights acting by their most likely action: exploration that evaluation need not keep.
    saved = agent.config
    agent.config = dataclasses.replace(saved, sample_eval=not saved.sample_eval)
    try:
        other_eval = agent.evaluate(trainer.eval_task_list, seed=trainer.eval_seed).scores.tolist()
    finally:
        agent.config = saved
    reference: dict[str, list[float]] = {}
    if family_id in REFERENCE:
        ref_cls = algo_spec(REFERENCE[family_id]).load()
        ref = ref_cls(ref_cls.config_class(), family, seed=seed)
        reference[REFERENCE[family_id]] = ref.evaluate(trainer.eval_task_list, seed=trainer.eval_seed).scores.tolist()
    return {
        "env": family_id, "family": family_kwargs, "settings": settings, "seed": seed, "minutes": minutes,
        "env_steps_budget": env_steps,
        "env_steps": trainer.env_steps, "train_seconds": trainer.elapsed, "seconds": seconds,
        "iterations": trainer.iteration, "load_before": load_before[:3], "load_after": os.getloadavg()[:3],
        "scores": trainer.final_result.scores.tolist(), "sample_eval": saved.sample_eval,
        "scores_other_eval": other_eval, "reference": reference, "run_dir": str(run_dir),
    }


def label(settings: dict[str, Any]) -> str:
    """A cell's name in the table."""
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "default"


def fmt(mean: float, ci: float, sign: bool = False) -> str:
    return f"{mean:+.2f} ± {ci:.2f}" if sign else f"{mean:.2f} ± {ci:.2f}"


def table(records: list[dict[str, Any]]) -> str:
    """The markdown table of ``records`` (one row per cell, in order of first appearance)."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        cells.setdefault(label(rec["settings"]), []).append(rec)
    first = next(iter(cells.values()), [])
    first_by_seed = {r["seed"]: np.asarray(r["scores"]) for r in first}
    budgets = sorted({(r["minutes"], r.get("env_steps_budget")) for r in records}, key=str)
    lines = ["Budget per run: " + "; ".join(f"{m:g} min" + (f" or {b:,} env steps, whichever first" if b else "")
                                           for m, b in budgets) + ".", "",
             "| cell | seeds | mean total return (95% CI) | per seed | − first cell (paired) | − best classical (paired) "
             "| same weights, the other evaluation (paired) | env steps (M) | steps/s | load average (start → end) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, recs in cells.items():
        scores = np.concatenate([r["scores"] for r in recs])
        mean, ci = mean_ci95(scores)
        per_seed = ", ".join(f"{np.mean(r['scores']):.2f}" for r in recs)
        same = [np.asarray(r["scores"]) - first_by_seed[r["seed"]] for r in recs
                if r["seed"] in first_by_seed and len(r["scores"]) == len(first_by_seed[r["seed"]])]
        vs_first = fmt(*mean_ci95(np.concatenate(same)), sign=True) if same and recs is not first else "—"
        ref = [np.asarray(r["scores"]) - np.asarray(next(iter(r["reference"].values()))) for r in recs if r["reference"]]
        vs_ref = fmt(*mean_ci95(np.concatenate(ref)), sign=True) if ref else "—"
        other = [r for r in recs if "scores_other_eval" in r]
        other_eval = "—"
        if other:
            kinds = {"mode" if r["sample_eval"] else "sampled" for r in other}
            diff = np.concatenate([np.asarray(r["scores_other_eval"]) - np.asarray(r["scores"]) for r in other])
            other_eval = (f"{'/'.join(sorted(kinds))} actions: "
                          f"{fmt(*mean_ci95(np.concatenate([r['scores_other_eval'] for r in other])))} "
                          f"({fmt(*mean_ci95(diff), sign=True)})")
        steps = np.mean([r["env_steps"] for r in recs])
        sps = np.mean([r["env_steps"] / r["train_seconds"] for r in recs])
        loads = ", ".join(f"{r['load_before'][0]:.2f} → {r['load_after'][0]:.2f}" for r in recs)
        lines.append(f"| {name} | {len(recs)} | {fmt(float(mean), float(ci))} | {per_seed} | {vs_first} | {vs_ref} "
                     f"| {other_eval} | {steps / 1e6:.1f} | {sps:,.0f} | {loads} |")
    loads = [r["load_before"][0] for r in records] + [r["load_after"][0] for r in records]
    if loads:
        lines.append(f"\nLoad average (1 min) over the runs' starts and ends: {min(loads):.2f} to {max(loads):.2f}.")
    for name in sorted({k for r in records for k in r["reference"]}):
        by_seed = {r["seed"]: r["reference"][name] for r in records if name in r["reference"]}
        mean, ci = mean_ci95(np.concatenate([np.asarray(v) for v in by_seed.values()]))
        lines.append(f"{REFERENCE_NAME.get(name, name)} on the same tasks: {fmt(float(mean), float(ci))}.")
    return "\n".join(lines)


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def main(argv: list[str] | None = None) -> str:
    """Run the cells (or, with ``--table``, only print the table) and return the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="metarl/Bandit-v0")
    parser.add_argument("--family", default="k=5,n=100", help="family arguments, key=value,...")
    parser.add_argument("--cells", nargs="+", default=["default"], help="RL² settings per cell, key=value,...")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall-clock per run")
    parser.add_argument("--env-steps", type=int, default=None,
                        help="also stop a run at this many env steps: the same samples per cell whatever the "
                             "machine's load (--minutes then only caps the run)")
    parser.add_argument("--eval-tasks", type=int, default=1000, help="held-out test tasks per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lock", default=None, help="hold an exclusive flock on this file during each run")
    parser.add_argument("--out", default=None, help="append each run's record to this JSON-lines file")
    parser.add_argument("--logdir", default=None, help="run directories (default: a temporary folder)")
    parser.add_argument("--table", default=None, help="print the table of this JSON-lines file and exit")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds (tiny bandit, tiny nets)")
    args = parser.parse_args(argv)
    if args.table:
        text = table(read_records(Path(args.table)))
        print(text)
        return text
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    family_kwargs = parse_settings(args.family)
    cells = [parse_settings(c) for c in args.cells]
    out = Path(args.out) if args.out else None
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for settings in cells:
            for seed in args.seeds:
                with locked(args.lock):
                    rec = run_cell(args.env, family_kwargs, settings, seed, args.minutes, args.env_steps,
                                   args.eval_tasks, args.logdir or tmp)
                records.append(rec)
                print(f"{label(settings)} seed {seed}: {np.mean(rec['scores']):.2f} after {rec['env_steps']:,} steps "
                      f"in {rec['train_seconds']:.0f} s; load {rec['load_before'][0]:.2f} -> {rec['load_after'][0]:.2f}",
                      file=sys.stderr, flush=True)
                if out is not None:
                    with out.open("a") as handle:
                        handle.write(json.dumps(rec) + "\n")
    text = table(read_records(out) if out is not None else records)
    print(text)
    return text


if __name__ == "__main__":
    main()
