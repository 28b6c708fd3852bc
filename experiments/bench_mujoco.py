"""Throughput of the MuJoCo locomotion families, as a markdown table.

For each family it measures env steps per second of the single env stepped in a Python loop
and of the batched env (``family.make_vec_env``: a ``SyncVectorEnv`` over the single env, one
task per sub-env, NEXT_STEP autoreset) at 8 and 32 sub-envs, with random actions pre-sampled
as arrays; each cell is measured over a fixed time budget after a short warm-up (the helpers
of ``bench_envs.py``). MuJoCo steps in C, so the batched env's Python loop over sub-envs adds
little: expect every column near the single env's rate.

Usage::

    python experiments/bench_mujoco.py [--budget SECONDS] [--families ID ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys

import gymnasium as gym
import numpy as np
from bench_envs import bench_single, bench_vector, fmt

import metarl
from metarl.rl.array_family import RLFamily

FAMILIES = (
    "metarl/HalfCheetahVel-v0",
    "metarl/HalfCheetahDir-v0",
    "metarl/AntDir-v0",
    "metarl/HalfCheetahDynamics-v0",
)
SIZES = (8, 32)


def uptime() -> str:
    """``uptime``'s line (with the load average), or ``os.getloadavg()`` where it is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--families", nargs="*", default=None, help="family ids (default: the four MuJoCo families)")
    args = parser.parse_args()
    try:
        import mujoco
    except ImportError:
        sys.exit('MuJoCo is not installed: pip install -e ".[mujoco]"')

    print(f"# MuJoCo family throughput (env steps per second; {args.budget:g} s per cell)\n")
    print(f"Command: `python {' '.join(sys.argv)}`  ")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, NumPy {np.__version__}, Gymnasium {gym.__version__}, MuJoCo {mujoco.__version__}  "
    )
    print(f"`uptime` at start: {uptime()}\n")
    sizes = " | ".join(f"batched@{n}" for n in SIZES)
    print(f"| family | single | {sizes} | batched@{max(SIZES)} / single |")
    print("|" + "---|" * (3 + len(SIZES)))
    for family_id in args.families or FAMILIES:
        family = metarl.make_family(family_id)
        assert isinstance(family, RLFamily), f"{family_id} is not an RL family"
        tasks = family.sample_tasks(max(SIZES), "train")
        single = bench_single(family, args.budget)
        batched = {}
        for n in SIZES:
            env = family.make_vec_env(n, tasks[:n])
            batched[n] = bench_vector(env, args.budget)
            env.close()
        cells = [fmt(single), *(fmt(batched[n]) for n in SIZES), f"{batched[max(SIZES)] / single:.2f}"]
        print(f"| `{family_id}` | " + " | ".join(cells) + " |", flush=True)
    print(f"\n`uptime` at end: {uptime()}")


if __name__ == "__main__":
    main()
