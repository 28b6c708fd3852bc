"""MAML policy gradient beside the MAML paper's baselines: adaptation curves on held-out tasks.

Trains, with the regular CLI, MAML (TRPO outer loop, second order), Meta-SGD (``--meta-sgd``)
and the *pretrained* baseline (``--inner-steps 0``: multi-task TRPO on the pre-adaptation
returns), then evaluates each with ``python -m metarl.evaluate RUN --inner-steps 3`` on the
same held-out tasks, plus the *random initialisation* baseline (``--init random``): every
policy takes 0..3 policy-gradient steps with step size ``--inner-lr`` on fresh
trajectories, as in Finn et al. 2017, figure 4. Prints mean return per step ± 95% CI over
tasks.

    python experiments/maml_pg_curve.py --env metarl/Nav2D-v0 --iterations 100
    python experiments/maml_pg_curve.py --env metarl/HalfCheetahVel-v0 --minutes 10 --variants maml \\
        -- --meta-batch 10 --trajectories 10

After the table, each trained variant's learning curve: its return on the training tasks before
and after adaptation against minutes and environment steps (``--curves RUN ...`` prints only
that, for runs already made).

Flags after ``--`` go to ``metarl.train`` (family and agent flags) for every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

VARIANTS = {"maml": [], "meta_sgd": ["--meta-sgd"], "pretrained": ["--inner-steps", "0"]}


def train(env: str, flags: list[str], args: argparse.Namespace) -> Path:
    cmd = [sys.executable, "-m", "metarl.train", "--algo", "maml_pg", "--env", env, "--iterations", str(args.iterations),
           "--eval-every", "0", "--eval-tasks", "20", "--no-progress", "--logdir", args.logdir, "--seed", str(args.seed),
           *flags]
    if args.minutes:
        cmd += ["--time-limit", str(args.minutes * 60)]
    print("$ python " + " ".join(cmd[1:]), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return Path(json.loads(out.strip().splitlines()[-1])["run_dir"])


def evaluate(run: Path, name: str, args: argparse.Namespace, extra: list[str]) -> dict:
    out = run / "eval" / f"curve-{name}.json"
    cmd = [sys.executable, "-m", "metarl.evaluate", str(run), "--split", "test", "--inner-steps", str(args.steps),
           "--num-tasks", str(args.tasks), "--json", str(out), *extra]
    print("$ python " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="metarl/Nav2D-v0")
    parser.add_argument("--iterations", type=int, default=100, help="meta-iterations per variant")
    parser.add_argument("--minutes", type=float, default=0.0, help="time limit per variant (0: none)")
    parser.add_argument("--steps", type=int, default=3, help="inner steps in evaluation")
    parser.add_argument("--tasks", type=int, default=100, help="held-out test tasks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs/maml_pg")
    parser.add_argument("--variants", nargs="*", default=["maml", "meta_sgd", "pretrained", "random"],
                        choices=[*VARIANTS, "random"])
    parser.add_argument("--curve-rows", type=int, default=8,
                        help="rows of each trained variant's learning curve (training tasks) printed at the end")
    parser.add_argument("--curves", nargs="+", type=Path, metavar="RUN",
                        help="only print the learning curves of these finished or running run directories")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.curves:
        for run in args.curves:
            print_training_curve(run, args.curve_rows)
        return
    extra = [f for f in args.train_flags if f != "--"]
    load = os.getloadavg()
    reports: dict[str, dict] = {}
    runs: dict[str, Path] = {}
    for name in args.variants:
        if name == "random":
            continue
        runs[name] = train(args.env, [*VARIANTS[name], *extra], args)
        reports[name] = evaluate(runs[name], name, args, [])
    if "random" in args.variants:
        # The same architecture and inner step size as MAML, freshly initialised.
        run = runs.get("maml") or train(args.env, ["--iterations", "1", *extra], args)
        reports["random"] = evaluate(run, "random", args, ["--init", "random"])
    print(f"\nMAML-PG on {args.env}, {args.tasks} held-out tasks, inner steps 0..{args.steps}; "
          f"load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}\n")
    print("| policy | " + " | ".join(f"step {j}" for j in range(args.steps + 1)) + " | training |")
    print("|---|" + "---|" * (args.steps + 2))
    for name, rep in reports.items():
        cells = [f"{p['mean']:.2f} ± {p['ci95']:.2f}" for p in rep["curve"]]
        trained = "-" if name == "random" else _training_summary(runs[name])
        print(f"| {name} | " + " | ".join(cells) + f" | {trained} |")
    for name, run in runs.items():
        print(f"\nLearning curve of {name} ({run}):")
        print_training_curve(run, args.curve_rows)


def _training_summary(run: Path) -> str:
    from metarl.run.logger import read_scalars

    tags = read_scalars(run)
    iters = len(tags.get("time/iteration_seconds", []))
    secs = sorted(v for _, v in tags.get("time/iteration_seconds", []))
    median = secs[len(secs) // 2] if secs else float("nan")
    return f"{iters} it, {median:.1f} s/it"


def print_training_curve(run: Path, rows: int) -> None:
    """The run's return on its training tasks before and after each inner step, against
    wall-clock minutes and environment steps, in ``rows`` rows (each the mean over its window of
    meta-iterations, since one iteration's return is noisy)."""
    from metarl.run.logger import read_scalars

    tags = read_scalars(run)
    steps = sorted(int(t.rsplit("_", 1)[1]) for t in tags if t.startswith("adaptation/return_step_"))
    elapsed = [v for _, v in tags["time/elapsed_seconds"]]
    env_steps = [v for _, v in tags["time/env_steps"]]
    returns = [[v for _, v in tags[f"adaptation/return_step_{j}"]] for j in steps]
    n = min(len(elapsed), *(len(r) for r in returns))
    print("| iterations | minutes | env steps (M) | " + " | ".join(f"step {j}" for j in steps)
          + (f" | step {steps[-1]} − step 0 |" if len(steps) > 1 else " |"))
    print("|---|---|---|" + "---|" * (len(steps) + (len(steps) > 1)))
    bounds = sorted({round(n * (i + 1) / rows) for i in range(rows)} - {0})
    start = 0
    for end in bounds:
        means = [sum(r[start:end]) / (end - start) for r in returns]
        gap = f" | {means[-1] - means[0]:+.2f}" if len(means) > 1 else ""
        print(f"| {start + 1}-{end} | {elapsed[end - 1] / 60:.1f} | {env_steps[end - 1] / 1e6:.1f} | "
              + " | ".join(f"{m:.2f}" for m in means) + gap + " |")
        start = end


if __name__ == "__main__":
    main()
