"""How long each ``python -m metarl.train`` example of the README takes with its defaults.

Each command runs under ``--time-limit SECONDS`` (periodic evaluation and baselines off); the
full run's time is projected from the share of the budget done in that time (steps or
iterations, read from the checkpoint), plus the final evaluation's measured time:

    projected = training seconds / share done + final evaluation seconds

    python experiments/readme_times.py --seconds 60              # every example
    python experiments/readme_times.py --seconds 60 --only Sinusoid Omniglot

A projection assumes later iterations cost what the first ones did (true of these algorithms:
fixed batch sizes). Run it alone: two jobs on two cores slow each other.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The README's ``python -m metarl.train`` examples without a budget flag of their own, in order."""
    text = (ROOT / "README.md").read_text()
    seen: dict[str, None] = {}
    for cmd in re.findall(r"`(python -m metarl\.train --algo [^`]*)`", text):
        if "--time-limit" not in cmd and "<" not in cmd:
            seen.setdefault(cmd)
    return list(seen)


def measure(cmd: str, seconds: float, python: str) -> tuple[float, float, float, float]:
    """(share of the budget done, training seconds, final evaluation seconds, projected seconds)."""
    with tempfile.TemporaryDirectory() as logdir:
        argv = shlex.split(cmd)[1:]  # drop "python"
        full = [python, *argv, "--time-limit", str(seconds), "--eval-every", "0", "--no-compare", "--no-progress",
                "--logdir", logdir]
        began = time.monotonic()
        subprocess.run(full, check=True, capture_output=True, text=True, cwd=ROOT)
        wall = time.monotonic() - began
        (run,) = Path(logdir).iterdir()
        config = json.loads((run / "config.json").read_text())
        state = torch.load(run / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
        trainer = state["trainer"]
        agent = config["agent"]
        if "total_env_steps" in agent:
            share = trainer["env_steps"] / agent["total_env_steps"]
        else:
            share = trainer["iteration"] / agent["iterations"]
        trained = float(trainer["elapsed"])
        final_eval = max(0.0, wall - trained - startup_seconds(python))
        return share, trained, final_eval, trained / share + final_eval


_STARTUP: dict[str, float] = {}


def startup_seconds(python: str) -> float:
    """Seconds of ``import metarl`` and a command's set-up (counted once per interpreter)."""
    if python not in _STARTUP:
        began = time.monotonic()
        subprocess.run([python, "-m", "metarl.list"], check=True, capture_output=True, cwd=ROOT)
        _STARTUP[python] = time.monotonic() - began
    return _STARTUP[python]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="training time measured per command")
    parser.add_argument("--only", nargs="*", default=[], help="only commands containing one of these texts")
    parser.add_argument("--metaworld-python", default="", help="an interpreter with the [metaworld] extra, for ML1/ML10")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| command | share of budget in the measured time | final evaluation (s) | projected full run (min) |")
    print("|---|---|---|---|")
    for cmd in readme_commands():
        if args.only and not any(text in cmd for text in args.only):
            continue
        python = sys.executable
        if "ML1" in cmd or "ML10" in cmd:
            if not args.metaworld_python:
                print(f"| `{cmd}` | not measured (needs --metaworld-python) | | |")
                continue
            python = args.metaworld_python
        share, trained, final_eval, projected = measure(cmd, args.seconds, python)
        print(f"| `{cmd}` | {share:.2%} in {trained:.0f} s | {final_eval:.0f} | {projected / 60:.1f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
