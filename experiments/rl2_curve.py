"""RL² held-out score against wall-clock time and throughput, on any RL family.

Trains with the regular CLI (``python -m metarl.train --algo rl2 ...``) under a time limit,
evaluating on 1,000 held-out test tasks every ``--eval-every`` iterations, reads the run's
TensorBoard events and prints a table: minutes, environment steps, steps per second,
held-out mean total return per trial ± 95% CI; then evaluates the ``--baselines`` on the
same 1,000 test tasks with ``python -m metarl.evaluate``.

    python experiments/rl2_curve.py --env metarl/Bandit-v0 --minutes 15 --baselines thompson ucb1 -- --k 5 --n 100
    python experiments/rl2_curve.py --env metarl/TabularMDP-v0 --minutes 30 --baselines random psrl

Flags after ``--`` go to ``metarl.train`` (family and RL² flags). ``--nproc 2`` trains under
``torchrun --standalone --nproc_per_node 2`` (data parallel, one process per core; the fastest
way to use both cores of a small machine, see "Data parallelism with torchrun" in RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from metarl import evaluate
from metarl.run.logger import read_scalars


def baseline(algo: str, env: str, family_kwargs: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        flags = [x for k, v in family_kwargs.items() for x in (f"--{k.replace('_', '-')}", str(v))]
        out = Path(tmp) / "r.json"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate.main(["--algo", algo, "--env", env, *flags, "--num-tasks", "1000", "--json", str(out)])
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="metarl/Bandit-v0")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--logdir", default="runs/bench")
    parser.add_argument("--baselines", nargs="*", default=[])
    parser.add_argument("--nproc", type=int, default=1, help="training processes (torchrun) on this machine")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    extra = [f for f in args.train_flags if f != "--"]
    load = os.getloadavg()
    # torchrun's own parser would take the bandit's --n for an abbreviation of --nnodes; after
    # "--" every flag goes to metarl.train untouched.
    launcher = (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc), "-m",
                 "metarl.train", "--"] if args.nproc > 1 else ["-m", "metarl.train"])
    cmd = [sys.executable, *launcher, "--algo", "rl2", "--env", args.env,
           "--time-limit", str(args.minutes * 60), "--eval-every", str(args.eval_every), "--eval-tasks", "1000",
           "--total-env-steps", str(10**11), "--no-progress", "--logdir", args.logdir, *extra]
    print("$ python " + " ".join(cmd[1:]), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
    cfg = json.loads((run_dir / "config.json").read_text())
    tags = read_scalars(run_dir)
    elapsed = dict(tags["time/elapsed_seconds"])
    sps = dict(tags["time/env_steps_per_second"])
    lo, hi = dict(tags["eval/score_lo"]), dict(tags["eval/score_hi"])
    print(f"\nRL² on {args.env} {cfg['family']}, {args.nproc} process(es); load average at start {load[0]:.2f}, "
          f"at end {os.getloadavg()[0]:.2f}; run {run_dir}\n")
    print("| minutes | env steps | steps/s (iteration) | held-out mean total return per trial (1,000 tasks) |")
    print("|---|---|---|---|")
    for step, score in tags["eval/score"]:
        t = elapsed.get(step, max(elapsed.values()))
        print(f"| {t / 60:.1f} | {step:,} | {sps.get(step, float('nan')):,.0f} | {score:.2f} ± {(hi[step] - lo[step]) / 2:.2f} |")
    all_sps = sorted(v for _, v in tags["time/env_steps_per_second"])
    print(f"\nmedian training throughput: {all_sps[len(all_sps) // 2]:,.0f} env steps/s")
    final = json.loads((run_dir / "eval" / "final_test.json").read_text())
    print(f"final RL²: {final['score']['mean']:.2f} ± {final['score']['ci95']:.2f}; per episode: "
          + ", ".join(f"{p['mean']:.2f}" for p in final["curve"][:10]))
    for algo in args.baselines:
        s = baseline(algo, args.env, cfg["family"])["score"]
        print(f"{algo}: {s['mean']:.2f} ± {s['ci95']:.2f} (same 1,000 test tasks)")


if __name__ == "__main__":
    main()
