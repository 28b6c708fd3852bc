"""RL², MAML-PG and the three SB3 baselines on the same tasks with the same budget.

For each family (the 5-armed bandit with 100 pulls, 2D navigation, the pendulum with varied
physics) every method trains through ``python -m metarl.train`` with seed 0 for the same
wall-clock budget (``--time-limit``, one torch thread), then is evaluated on the same held-out
test tasks (the first ``--eval-tasks`` of seed 0's test stream). PPO scratch has no
meta-training: it trains a fresh policy on each of the first ``--scratch-tasks`` of those tasks
for ``--scratch-steps`` environment steps. Each training command runs under
``flock /tmp/bench.lock`` (the machine is shared), and the load average is printed beside it.

    python experiments/meta_baselines.py --seconds 120
    python experiments/meta_baselines.py --seconds 120 --families metarl/Nav2D-v0 --methods rl2 ppo-oracle

Prints a Markdown table and writes one figure per family (``python -m metarl.plot``) under
``experiments/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAMILIES = {  # flags, and episodes per trial (the bandit's are single pulls)
    "metarl/Bandit-v0": (["--k", "5", "--n", "100"], 100),
    "metarl/Nav2D-v0": ([], 2),
    "metarl/Pendulum-v0": ([], 2),
}
METHODS = {
    "rl2": ["--algo", "rl2"],
    "maml_pg": ["--algo", "maml_pg"],
    "ppo-multitask": ["--algo", "ppo", "--mode", "multitask"],
    "ppo-oracle": ["--algo", "ppo", "--mode", "oracle"],
    "ppo-scratch": ["--algo", "ppo", "--mode", "scratch"],
}


def run(family: str, method: str, args: argparse.Namespace, logdir: Path) -> dict:
    """Train one cell; return its final report, random baseline, load averages and command."""
    out = logdir / f"{family.replace('/', '-')}__{method}"
    cmd = [sys.executable, "-m", "metarl.train", "--env", family, *FAMILIES[family][0], *METHODS[method],
           "--seed", "0", "--threads", "1", "--eval-tasks", str(args.eval_tasks), "--no-progress",
           "--logdir", str(out)]
    if method == "ppo-scratch":
        cmd += ["--scratch-tasks", str(args.scratch_tasks), "--scratch-steps", str(args.scratch_steps)]
    else:
        cmd += ["--time-limit", str(args.seconds)]
    load_start = os.getloadavg()[0]
    lock = ["flock", args.lock] if args.lock else []
    proc = subprocess.run([*lock, *cmd], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (run_dir,) = list(out.iterdir())
    report = json.loads((run_dir / "eval" / "final_test.json").read_text())
    baselines = json.loads((run_dir / "eval" / "baselines.json").read_text())
    steps = read_env_steps(run_dir)
    at = cmd.index("--logdir")
    shown = shlex.join(cmd[1:at] + cmd[at + 2:])
    return {"report": report, "random": baselines[0], "run_dir": run_dir, "env_steps": steps,
            "load": (load_start, os.getloadavg()[0]), "command": "python " + shown}


def per_episode(report: dict, episodes: int) -> tuple[float, float]:
    """Mean return per episode and its CI: a trial's total over its episodes, or MAML-PG's
    return per trajectory after its inner steps as it is."""
    mean, ci = report["score"]["mean"], report["score"]["ci95"]
    if report["score_name"] == "total_return_per_trial":
        return mean / episodes, ci / episodes
    return mean, ci


def read_env_steps(run_dir: Path) -> int:
    """Environment steps the run trained for (0 for scratch: it trains in evaluation)."""
    import torch

    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    return int(state["trainer"]["env_steps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="training budget of each meta-trained method")
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--scratch-tasks", type=int, default=10)
    parser.add_argument("--scratch-steps", type=int, default=20_000)
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--logdir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--lock", default="/tmp/bench.lock", help="run each training under flock LOCK ('': no lock)")
    args = parser.parse_args()
    logdir = Path(args.logdir or tempfile.mkdtemp(prefix="meta_baselines_"))
    print(f"{args.seconds:g} s of training per method (scratch: {args.scratch_steps:,} steps in each of "
          f"{args.scratch_tasks} tasks), {args.eval_tasks} held-out tasks, runs in {logdir}\n")
    print("| family | method | env steps trained | held-out score (95% CI) | score | return per episode | "
          "random, same tasks (per episode) | load average |")
    print("|---|---|---|---|---|---|---|---|")
    figures = ROOT / "experiments" / "results"
    figures.mkdir(parents=True, exist_ok=True)
    for family in args.families:
        run_dirs = []
        for method in args.methods:
            cell = run(family, method, args, logdir)
            r, rnd = cell["report"], cell["random"]
            run_dirs.append(str(cell["run_dir"]))
            trained = f"{cell['env_steps']:,}" if cell["env_steps"] else f"{args.scratch_steps:,} per task"
            episodes = FAMILIES[family][1]
            ep, ep_ci = per_episode(r, episodes)
            rnd_ep, rnd_ci = per_episode({"score": {"mean": rnd["mean"], "ci95": rnd["ci95"]},
                                          "score_name": rnd["score_name"]}, episodes)
            print(f"| {family} | {method} | {trained} | {r['score']['mean']:.2f} ± {r['score']['ci95']:.2f} "
                  f"({r['num_tasks']} tasks) | {r['score_name']} | {ep:.3f} ± {ep_ci:.3f} | "
                  f"{rnd_ep:.3f} ± {rnd_ci:.3f} | {cell['load'][0]:.2f} → {cell['load'][1]:.2f} |", flush=True)
            print(f"<!-- {cell['command']} -->", flush=True)
        name = family.split("/")[1].lower().replace("-v0", "")
        subprocess.run([sys.executable, "-m", "metarl.plot", *run_dirs, "--out",
                        str(figures / f"meta_baselines_{name}.png")], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
