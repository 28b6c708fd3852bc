"""RL² on Bernoulli bandits: held-out score against wall-clock time and throughput.

Trains with the regular CLI (``python -m metarl.train --algo rl2 ...``) under a time limit,
evaluating on 1,000 held-out test tasks every ``--eval-every`` iterations, then reads the
run's TensorBoard events and prints a table: minutes, environment steps, steps per second,
held-out mean total reward ± 95% CI, beside the classical baselines measured by
``experiments/bandit_baselines.py``.

    python experiments/rl2_bandit.py --k 5 --n 100 --minutes 15 [extra train flags...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from metarl.tb import read_scalars

BASELINES = Path(__file__).parent / "results" / "bandit_baselines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--logdir", default="runs/bench")
    args, extra = parser.parse_known_args()
    load = os.getloadavg()
    cmd = [sys.executable, "-m", "metarl.train", "--algo", "rl2", "--env", "metarl/Bandit-v0",
           "--k", str(args.k), "--n", str(args.n), "--time-limit", str(args.minutes * 60),
           "--eval-every", str(args.eval_every), "--eval-tasks", "1000", "--total-env-steps", str(10**11),
           "--no-progress", "--logdir", args.logdir, *extra]
    print("$ " + " ".join(cmd[1:]), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
    tags = read_scalars(run_dir)
    elapsed = dict(tags["time/elapsed_seconds"])
    sps = dict(tags["time/env_steps_per_second"])
    lo, hi = dict(tags["eval/score_lo"]), dict(tags["eval/score_hi"])
    print(f"\nRL² on metarl/Bandit-v0 k={args.k} n={args.n}; load average at start {load[0]:.2f}, "
          f"at end {os.getloadavg()[0]:.2f}; run {run_dir}\n")
    print("| minutes | env steps | steps/s (iteration) | held-out mean total reward (1,000 tasks) |")
    print("|---|---|---|---|")
    for step, score in tags["eval/score"]:
        t = elapsed.get(step, max(elapsed.values()))
        print(f"| {t / 60:.1f} | {step:,} | {sps.get(step, float('nan')):,.0f} | {score:.2f} ± {(hi[step] - lo[step]) / 2:.2f} |")
    all_sps = [v for _, v in tags["time/env_steps_per_second"]]
    print(f"\nmedian training throughput: {sorted(all_sps)[len(all_sps) // 2]:,.0f} env steps/s")
    final = json.loads((run_dir / "eval" / "final_test.json").read_text())["score"]
    print(f"final: {final['mean']:.2f} ± {final['ci95']:.2f}")
    for algo in ("thompson", "ucb1", "greedy", "bayes_optimal"):
        f = BASELINES / f"{algo}_k{args.k}_n{args.n}.json"
        if f.exists():
            s = json.loads(f.read_text())["score"]
            print(f"{algo}: {s['mean']:.2f} ± {s['ci95']:.2f} (10,000 tasks)")


if __name__ == "__main__":
    main()
