"""The README's quickstart, timed: ``python -m metarl.train --algo rl2`` with its defaults, for a
few seeds, against the baselines it prints at the end (scored on the same held-out tasks).

    python experiments/quickstart.py --seeds 0 1 2 --logdir /tmp/quickstart

Prints one row per seed (wall-clock seconds of the whole command, env steps, the held-out
score and each baseline's paired difference) and the load average before and after. Run it
alone: two jobs on two cores slow each other.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--logdir", default="runs/quickstart")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER, help="extra flags after --")
    args = parser.parse_args()
    extra = [f for f in args.train_flags if f != "--"]
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| seed | seconds | env steps | periodic evaluation (share of training time) | rl2 (held-out, 500 tasks) "
          "| baseline: score, rl2 − baseline (paired) |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        cmd = [sys.executable, "-m", "metarl.train", "--algo", "rl2", "--seed", str(seed), "--logdir", args.logdir,
               "--no-progress", *extra]
        began = time.monotonic()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        seconds = time.monotonic() - began
        line = json.loads(out.strip().splitlines()[-1])
        run = Path(line["run_dir"])
        score = line["score"]
        baselines = json.loads((run / "eval" / "baselines.json").read_text())
        steps = json.loads((run / "config.json").read_text())["agent"]["total_env_steps"]
        tags = read_scalars(run)
        evals = [v for _, v in tags.get("time/eval_seconds", [])]
        share = sum(evals) / max(v for _, v in tags["time/elapsed_seconds"])
        refs = "; ".join(f"{b['algo']} {b['mean']:.2f}, {b['difference']:+.2f} ± {b['difference_ci95']:.2f}"
                         for b in baselines)
        print(f"| {seed} | {seconds:.0f} | {steps:,} | {len(evals)} in {sum(evals):.1f} s ({share:.1%}) "
              f"| {score['mean']:.2f} ± {score['ci95']:.2f} | {refs} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
