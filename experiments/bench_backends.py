"""Array families on NumPy vs torch tensors (issue 17), as markdown tables.

(a) Env-only throughput: env steps per second of the batched env of each family (default: the
    bandit and the tabular MDP) at 1,024 and 65,536 sub-envs, under NEXT_STEP autoreset (the
    Gymnasium default; the NumPy env skips the step in which every sub-env resets, half of the
    bandit's) and SAME_STEP (what RL² uses), random actions pre-sampled in the env's own kind
    (arrays for NumPy, tensors on the device for torch),
    for each backend: ``numpy`` (``make_vec_env(...)``) and ``torch:<device>``
    (``make_vec_env(..., device=...)``). On an accelerator the clock stops after the device
    has finished.
(b) RL² end to end: env steps per second of whole training iterations (rollout and PPO update)
    on the bandit with the NumPy env and with the env on the agent's device
    (``RL2Config.env_device``), after one warm-up iteration.

Usage::

    python experiments/bench_backends.py [--budget SECONDS] [--devices cpu [cuda]] [--sizes 1024 65536] [--threads 1]

One torch thread by default, like the other CPU benchmarks here (NumPy's element-wise code is
single-threaded too; on a shared 2-core machine two torch threads spin against other processes).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

import metarl
from metarl.agents.rl2 import RL2, RL2Config
from metarl.rl.array_family import ArrayRLFamily

sys.path.insert(0, os.path.dirname(__file__))
from bench_envs import ACTION_BATCHES, batched_actions, fmt  # noqa: E402


def sync(device: str | None) -> None:
    """Wait for the device's queued work (nothing to wait for with NumPy or on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def throughput(step: Callable[[int], None], per_call: int, budget: float, device: str | None) -> float:
    """Env steps per second of ``step(i)`` over ``budget`` seconds, the device's work included."""
    for i in range(3):
        step(i)
    sync(device)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        step(calls)
        calls += 1
    sync(device)
    return calls * per_call / (time.perf_counter() - start)


def bench_env(family: ArrayRLFamily, tasks: list, device: str | None, mode: AutoresetMode, budget: float) -> float:
    env = family.make_vec_env(len(tasks), tasks, autoreset_mode=mode, device=device)
    env.reset(seed=0)
    actions = batched_actions(family.action_space, len(tasks), seed=0)
    if device is not None:
        actions = [torch.as_tensor(a, device=device) for a in actions]
    rate = throughput(lambda i: env.step(actions[i % ACTION_BATCHES]), len(tasks), budget, device)
    env.close()
    return rate


def bench_rl2(env_device: str, device: str, iterations: int) -> float:
    family = metarl.make_family("metarl/Bandit-v0")
    agent = RL2(RL2Config(env_device=env_device), family, seed=0, device=device)  # type: ignore[arg-type]
    agent.train_iteration()  # warm-up
    sync(device)
    steps, start = 0, time.perf_counter()
    for _ in range(iterations):
        steps += agent.train_iteration().env_steps
    sync(device)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per env-only measurement")
    parser.add_argument("--families", nargs="*", default=["metarl/Bandit-v0", "metarl/TabularMDP-v0"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[1024, 65536])
    parser.add_argument("--devices", nargs="*", default=["cpu"], help="torch devices to compare with NumPy")
    parser.add_argument("--rl2-iterations", type=int, default=3, help="timed RL² iterations per row (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print("# Array families on NumPy and on torch tensors\n")
    print(f"Command: `python {' '.join(sys.argv)}`  ")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; Python {platform.python_version()}, NumPy {np.__version__}, torch "
          f"{torch.__version__}, Gymnasium {gym.__version__}  ")
    print(f"Load average at start (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}\n")
    backends: list[tuple[str, str | None]] = [("numpy", None)] + [(f"torch:{d}", d) for d in args.devices]
    modes = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
    columns = [f"{mode.name.lower()}@{n}" for mode in modes for n in args.sizes]
    print("| family | backend | " + " | ".join(columns) + " |")
    print("|" + "---|" * (2 + len(columns)))
    for family_id in args.families:
        family = metarl.make_family(family_id)
        assert isinstance(family, ArrayRLFamily), f"{family_id} is not an array family"
        base = family.sample_tasks(1024, "train")
        for name, device in backends:
            # 1,024 distinct tasks, repeated: 65,536 distinct ones would cost gigabytes of Python objects.
            cells = [fmt(bench_env(family, (base * (n // len(base) + 1))[:n], device, mode, args.budget))
                     for mode in modes for n in args.sizes]
            print(f"| `{family_id}` | {name} | " + " | ".join(cells) + " |", flush=True)
    if args.rl2_iterations:
        print("\n| RL² bandit (k=5, n=100, 1,024 trials), agent on | env | env steps/s, whole iterations |")
        print("|---|---|---|")
        for device in args.devices:
            for env_device in ("numpy", "agent"):
                rate = bench_rl2(env_device, device, args.rl2_iterations)
                env = "NumPy" if env_device == "numpy" else f"torch:{device}"
                print(f"| {device} | {env} | {fmt(rate)} |", flush=True)
    load = os.getloadavg()
    print(f"\nLoad average at end (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


if __name__ == "__main__":
    main()
