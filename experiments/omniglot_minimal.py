"""Omniglot "minimal" protocol (Lake et al. 2015, 2019): meta-train on ONE minimal background set,
test 20-way and 5-way 1-shot within-alphabet classification on alphabets held out from training.

    python experiments/omniglot_minimal.py                       # full budgets (<= 20 min per training run on CPU)
    python experiments/omniglot_minimal.py --quick               # tiny budgets: check that everything runs
    python experiments/omniglot_minimal.py --backgrounds small1 --algos protonet --device cuda

Protocol. Each minimal set is used alone, as Lake et al. do:

- background ``small1`` (Balinese, Early_Aramaic, Greek, Korean, Latin; 136 characters) is tested on
  the alphabets of ``small2`` that it lacks: Japanese_(katakana) (47 characters), Sanskrit (42) and
  Tagalog (17; too small for 20-way tasks, so 20-way tasks come from the other two);
- background ``small2`` (Greek, Japanese_(katakana), Latin, Sanskrit, Tagalog; 156 characters) is
  tested on ``small1``'s Balinese (24), Early_Aramaic (22) and Korean (40).

Greek and Latin are in both sets and so are never test alphabets. A test task takes one alphabet
uniformly, then N of its characters (within-alphabet, like the 20 official runs); each class gets
1 support drawing and 5 query drawings (the official runs have 1 query per class; more queries only
lower the variance). Scores are query error rates with 95% confidence intervals over >= 1,000
episodes. Training augments classes with 90° rotations (each a new class) and, with the settings
below, distorts each training image by a small random affine map.

The official 20 runs use the evaluation set's alphabets, which are not on this machine; with them,
score a trained run by ``python -m metarl.evaluate RUN_DIR --benchmark omniglot-oneshot --data-root DIR``.
Published errors on those runs with a minimal background set: ConvNet 23.2%, ProtoNets 30.1%
(Lake et al. 2019, "The Omniglot challenge", table 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metarl import train
from metarl.core.registry import algo_spec
from metarl.core.seeding import task_rng
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# Training settings (name -> algorithm, flags), sized so that a run takes <= 20 minutes on one
# core of the development machine (measured CPU time per update: protonet 60-way 0.52 s, 20-way
# 0.17 s, finetune 0.17 s); --time-limit enforces the bound whatever the machine.
FULL: dict[str, tuple[str, list[str]]] = {
    "protonet": ("protonet", ["--train-ways", "60", "--train-queries", "5", "--iterations", "2000",
                              "--lr-halve-every", "700", "--augment"]),
    "finetune": ("finetune", ["--batch-size", "128", "--iterations", "6000", "--lr-halve-every", "2000", "--augment"]),
    "nearest_neighbour": ("nearest_neighbour", []),
    # Variants (not run by default): the paper's settings without augmentation, and 20-way training.
    "protonet_noaug": ("protonet", ["--train-ways", "60", "--train-queries", "5", "--iterations", "2000",
                                    "--lr-halve-every", "700"]),
    "protonet_20way": ("protonet", ["--train-ways", "20", "--train-queries", "5", "--iterations", "6000",
                                    "--lr-halve-every", "2000", "--augment"]),
    "finetune_noaug": ("finetune", ["--batch-size", "128", "--iterations", "6000", "--lr-halve-every", "2000"]),
    # Within-alphabet training episodes, like the test episodes (harder negatives).
    "protonet_within": ("protonet", ["--train-ways", "60", "--train-queries", "5", "--iterations", "2000",
                                     "--lr-halve-every", "700", "--augment", "--train-scope", "within"]),
    "protonet_within_20way": ("protonet", ["--train-ways", "20", "--train-queries", "15", "--iterations", "2000",
                                           "--lr-halve-every", "700", "--augment", "--train-scope", "within"]),
    # A wider embedding (128 filters per convolution), 20-way training episodes.
    "protonet_wide": ("protonet", ["--train-ways", "20", "--train-queries", "5", "--iterations", "1800",
                                   "--lr-halve-every", "600", "--augment", "--channels", "128"]),
    # The other meta-learners. MAML and the LSTM learner have an N-way output layer, so each
    # model is trained for one N and evaluated at that N only (as in the MAML paper).
    "siamese": ("siamese", ["--iterations", "3000"]),
    "maml_20way": ("maml", ["--ways", "20", "--meta-batch", "16", "--inner-lr", "0.4", "--eval-inner-steps", "3",
                            "--iterations", "100000"]),
    "maml_5way": ("maml", ["--ways", "5", "--meta-batch", "32", "--inner-lr", "0.4", "--eval-inner-steps", "3",
                           "--iterations", "100000"]),
    "meta_sgd_5way": ("maml", ["--ways", "5", "--meta-batch", "32", "--inner-lr", "0.4", "--eval-inner-steps", "1",
                               "--meta-sgd", "--iterations", "100000"]),
    "anil_5way": ("maml", ["--ways", "5", "--meta-batch", "32", "--inner-lr", "0.4", "--eval-inner-steps", "3",
                           "--anil", "--iterations", "100000"]),
    "lstm_20way": ("lstm", ["--ways", "20", "--meta-batch", "16", "--iterations", "100000"]),
    "lstm_5way": ("lstm", ["--ways", "5", "--meta-batch", "16", "--train-queries", "2", "--hidden-size", "384",
                           "--lr", "2e-3", "--iterations", "100000"]),
    "snail_5way": ("snail", ["--ways", "5", "--meta-batch", "16", "--train-queries", "2", "--lr", "2e-3", "--width", "64",
                             "--iterations", "100000"]),
    # The README's commands: each algorithm's defaults.
    "protonet_default": ("protonet", []),
    "matching_default": ("matching", []),
    # Matching networks beside ProtoNets, on the same episodes and budget.
    "matching": ("matching", ["--train-ways", "60", "--train-queries", "5", "--iterations", "2000",
                              "--lr-halve-every", "700", "--augment"]),
    "matching_20way": ("matching", ["--train-ways", "20", "--train-queries", "5", "--iterations", "6000",
                                    "--lr-halve-every", "2000", "--augment"]),
}
FIXED_WAYS = {"maml_20way": 20, "maml_5way": 5, "meta_sgd_5way": 5, "anil_5way": 5, "lstm_20way": 20, "lstm_5way": 5,
              "snail_5way": 5}
"""Settings whose model has an N-way output layer: evaluated at that N only."""
QUICK: dict[str, list[str]] = {
    "protonet": ["--train-ways", "20", "--train-queries", "2", "--iterations", "10", "--channels", "16"],
    "finetune": ["--batch-size", "32", "--iterations", "10", "--channels", "16", "--finetune-steps", "10"],
    "nearest_neighbour": [],
}


def train_run(algo: str, background: str, flags: list[str], logdir: Path, seed: int, device: str,
              time_limit: float, threads: int) -> tuple[Path, float]:
    """Train one run with ``python -m metarl.train`` (in process); return its directory and wall time."""
    before = set(logdir.glob("*")) if logdir.exists() else set()
    argv = ["--algo", algo, "--env", "metarl/Omniglot-v0", "--background", background, "--seed", str(seed),
            "--device", device, "--threads", str(threads), "--eval-every", "0", "--eval-tasks", "100",
            "--time-limit", str(time_limit), "--logdir", str(logdir), "--no-progress", *flags]
    print("python -m metarl.train " + " ".join(argv), file=sys.stderr, flush=True)
    start = time.monotonic()
    if train.main(argv) != 0:
        raise RuntimeError(f"training {algo} on {background} failed")
    (run,) = set(logdir.glob("*")) - before
    return run, time.monotonic() - start


def evaluate(algo: str, background: str, run: Path | None, ways: int, episodes: int, seed: int,
             device: str) -> dict[str, Any]:
    """1-shot within-alphabet query error on held-out alphabets, ``episodes`` episodes."""
    from metarl.envs.omniglot import OmniglotFamily

    cls = algo_spec(algo).load()
    family = OmniglotFamily(ways=ways, shots=1, queries=5, background=background)
    if run is not None:
        cfg = json.loads((run / "config.json").read_text())
        config = cls.config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["agent"].items()})
    else:
        config = cls.config_class()
    if "eval_shots" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, eval_shots=(1,))
    agent = cls(config, family, seed=seed, device=device)
    if run is not None:
        agent.load_state_dict(load_checkpoint(run / "checkpoints" / CHECKPOINT)["agent"])
    tasks = family.sample_tasks(episodes, "test", task_rng(seed, "test"))
    start = time.monotonic()
    report = agent.evaluate(tasks, seed=seed).report("metarl/Omniglot-v0", algo, "test")
    acc = report["score"]
    return {"ways": ways, "episodes": episodes, "error": 1 - acc["mean"], "ci95": acc["ci95"],
            "eval_seconds": time.monotonic() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backgrounds", nargs="+", default=["small1", "small2"])
    parser.add_argument("--algos", nargs="+", default=["protonet", "finetune", "nearest_neighbour"],
                        choices=sorted(FULL), help="settings to run (see FULL)")
    parser.add_argument("--episodes", type=int, default=1000, help="test episodes per setting")
    parser.add_argument("--minutes", type=float, default=20.0, help="time limit of each training run")
    parser.add_argument("--quick", action="store_true", help="tiny budgets and 50 episodes: a smoke run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/omniglot_minimal", help="results.json goes here")
    parser.add_argument("--logdir", default=None, help="run directories (default: OUT/runs)")
    args = parser.parse_args()
    episodes = 50 if args.quick else args.episodes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)
    rows = []
    logdir = Path(args.logdir) if args.logdir else out / "runs"
    for background in args.backgrounds:
        for name in args.algos:
            algo, flags = FULL[name]
            if args.quick:
                ways_flags = ["--ways", str(FIXED_WAYS[name])] if name in FIXED_WAYS else []
                flags = QUICK.get(algo, ["--iterations", "5"]) + ways_flags
            run, seconds = None, 0.0
            if algo_spec(algo).load().learns:
                run, seconds = train_run(algo, background, flags, logdir, args.seed, args.device,
                                         args.minutes * 60, args.threads)
            row = {"background": background, "setting": name, "algo": algo, "run": str(run) if run else None,
                   "train_minutes": seconds / 60, "flags": flags,
                   "iterations": load_checkpoint(run / "checkpoints" / CHECKPOINT)["trainer"]["iteration"] if run else 0,
                   "load_average": os.getloadavg()[0]}
            for ways in (20, 5):
                if FIXED_WAYS.get(name, ways) == ways:
                    row[f"{ways}-way"] = evaluate(algo, background, run, ways, episodes, args.seed + 1, args.device)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| background | setting | training (min, iterations) | 20-way 1-shot error | 5-way 1-shot error |")
    print("|---|---|---|---|---|")
    for r in rows:
        cells = [f"{100 * r[f'{w}-way']['error']:.1f}% ± {100 * r[f'{w}-way']['ci95']:.1f}" if f"{w}-way" in r else "-"
                 for w in (20, 5)]
        print(f"| {r['background']} | {r['setting']} | {r['train_minutes']:.1f}, {r['iterations']} | {cells[0]} | {cells[1]} |")
    print(f"\n{episodes} held-out within-alphabet episodes per cell (5 queries per class), 95% CIs; "
          f"device {args.device}; load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
