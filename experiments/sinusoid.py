"""MAML and Meta-SGD on K-shot sinusoid regression (K = 5, 10, 20) beside Table 1 of Li et al. 2017.

Each cell trains with the regular CLI and the MAML paper's setup (section 5.1 and
appendix A.1): the 40-40 ReLU MLP, one inner step of size 0.01 in training (Meta-SGD:
per-parameter step sizes initialised to 0.01 and learned), K support and K query points
per task, meta-batch 25, Adam with meta learning rate 1e-3 (here decayed to 0 by a cosine
over the run, ``--lr-decay``). The run is then scored by ``python -m metarl.evaluate`` on
held-out test tasks (1,000 by default, 100 query points each): the mean squared error after
one inner step with its 95% CI, and the curve over 0..10 steps.

    python experiments/sinusoid.py [--shots 5 10 20] [--algos maml meta_sgd] [--iterations 40000]
                                   [--minutes 10] [--parallel 1] [extra train flags ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from metarl.run.logger import read_scalars

PUBLISHED = {  # Li et al. 2017 (Meta-SGD), Table 1: MSE after one step, 5 / 10 / 20 shots
    "maml": {5: 1.13, 10: 0.85, 20: 0.71},
    "meta_sgd": {5: 0.90, 10: 0.53, 20: 0.31},
}


def train_command(algo: str, shots: int, args: argparse.Namespace, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "metarl.train", "--algo", "maml", "--env", "metarl/Sinusoid-v0",
           "--shots", str(shots), "--queries", "100", "--train-queries", str(shots),
           "--iterations", str(args.iterations), "--lr-decay", "--eval-inner-steps", "10",
           "--eval-every", str(max(1, args.iterations // 5)), "--eval-tasks", "500",
           "--time-limit", str(args.minutes * 60), "--seed", str(args.seed), "--no-progress",
           "--logdir", args.logdir]
    if algo == "meta_sgd":
        cmd.append("--meta-sgd")
    return cmd + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--algos", nargs="+", choices=["maml", "meta_sgd"], default=["maml", "meta_sgd"])
    parser.add_argument("--iterations", type=int, default=40_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="time limit of each training run")
    parser.add_argument("--eval-tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1, help="training runs at once (one thread each)")
    parser.add_argument("--logdir", default="runs/sinusoid")
    args, extra = parser.parse_known_args()
    load_start = os.getloadavg()
    jobs = [(algo, k) for k in args.shots for algo in args.algos]
    pending, running, done = list(jobs), [], {}
    while pending or running:
        while pending and len(running) < args.parallel:
            algo, k = pending.pop(0)
            cmd = train_command(algo, k, args, extra)
            print("$ python " + " ".join(cmd[1:]), flush=True)
            running.append((algo, k, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        time.sleep(2)
        for item in list(running):
            algo, k, proc = item
            if proc.poll() is None:
                continue
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"training {algo} K={k} failed:\n{err[-3000:]}")
            running.remove(item)
            run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
            report = run_dir / "eval" / f"test{args.eval_tasks}.json"
            ev = [sys.executable, "-m", "metarl.evaluate", str(run_dir), "--split", "test",
                  "--num-tasks", str(args.eval_tasks), "--json", str(report)]
            print("$ python " + " ".join(ev[1:]), flush=True)
            subprocess.run(ev, check=True, capture_output=True)
            iteration, elapsed = read_scalars(run_dir)["time/elapsed_seconds"][-1]
            done[(algo, k)] = (json.loads(report.read_text()), run_dir, elapsed, iteration)

    print(f"\nSinusoid regression, MSE on {args.eval_tasks} held-out test tasks (100 query points each) after one "
          f"inner step, mean ± 95% CI; paper: Li et al. 2017, Table 1. Load average at start "
          f"{load_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}.\n")
    print("| K | " + " | ".join(f"{a} (paper)" for a in args.algos) + " |")
    print("|---|" + "---|" * len(args.algos))
    for k in args.shots:
        cells = []
        for algo in args.algos:
            report = done[(algo, k)][0]
            one = report["curve"][1]
            cells.append(f"{one['mean']:.2f} ± {one['ci95']:.2f} ({PUBLISHED[algo][k]:.2f})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("\nAdaptation curves (MSE after 0..10 inner steps, mean over the same tasks):\n")
    print("| algo | K | " + " | ".join(str(j) for j in range(11)) + " |")
    print("|---|---|" + "---|" * 11)
    for (algo, k), (report, _, _, _) in sorted(done.items()):
        print(f"| {algo} | {k} | " + " | ".join(f"{p['mean']:.2f}" for p in report["curve"]) + " |")
    print("\n| algo | K | meta-iterations | training minutes | run directory |")
    print("|---|---|---|---|---|")
    for (algo, k), (_, run_dir, seconds, iteration) in sorted(done.items()):
        print(f"| {algo} | {k} | {iteration:,} | {seconds / 60:.1f} | {run_dir} |")


if __name__ == "__main__":
    main()
