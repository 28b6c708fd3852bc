"""Environment throughput of every registered RL family, as a markdown table.

For each family it measures env steps per second of
(a) the single env stepped in a Python loop,
(b) Gymnasium's ``SyncVectorEnv`` over 64 single envs,
(c) the family's native batched env at 64, 1,024 and 4,096 sub-envs (NEXT_STEP autoreset),
(d) for array families, the bare array step at 4,096: ``family.step_state`` and
    ``family.observe`` on the arrays, no env wrapper and no resets (a lower bound on time),
and the ratios native@4096 / sync@64 (target >= 100x) and native@4096 / bare (target >= 0.5,
i.e. within 2x). Actions are random, pre-sampled as arrays; each figure is measured over a
fixed time budget after a short warm-up.

Usage::

    python experiments/bench_envs.py [--budget SECONDS] [--families ID ...]
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
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import batch_space

import metarl
from metarl.rl.array_family import ArrayRLFamily, RLFamily

NATIVE_SIZES = (64, 1024, 4096)
SYNC_SIZE = 64
BARE_SIZE = 4096
ACTION_BATCHES = 16  # pre-sampled action batches, cycled through


def throughput(step: Callable[[int], None], per_call: int, budget: float) -> float:
    """Env steps per second of ``step(i)`` (``per_call`` env steps each) over ``budget`` seconds."""
    for i in range(3):  # warm-up: caches, first-call allocations
        step(i)
    calls, start = 0, time.perf_counter()
    while True:
        step(calls)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return calls * per_call / elapsed


def batched_actions(space: gym.Space, num_envs: int, seed: int) -> list:
    batched = batch_space(space, num_envs)
    batched.seed(seed)
    return [batched.sample() for _ in range(ACTION_BATCHES)]


def bench_single(family: RLFamily, budget: float) -> float:
    env = family.make_env(family.default_task())
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(256)]

    def step(i: int) -> None:
        _, _, term, trunc, _ = env.step(actions[i % 256])
        if term or trunc:
            env.reset()

    return throughput(step, 1, budget)


def bench_vector(env: gym.vector.VectorEnv, budget: float) -> float:
    env.reset(seed=0)
    actions = batched_actions(env.single_action_space, env.num_envs, seed=0)
    return throughput(lambda i: env.step(actions[i % ACTION_BATCHES]), env.num_envs, budget)


def bench_bare(family: ArrayRLFamily, tasks: list, budget: float) -> float:
    n = len(tasks)
    params, state = family.task_params(tasks), family.new_state(n)
    rng = np.random.default_rng(0)
    everything = slice(None)
    family.reset_state(params, state, everything, rng)
    actions = batched_actions(family.action_space, n, seed=0)

    def step(i: int) -> None:
        family.step_state(params, state, actions[i % ACTION_BATCHES], everything, rng)
        family.observe(params, state, everything)

    return throughput(step, n, budget)


def fmt(x: float | None) -> str:
    if x is None:
        return "—"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--families", nargs="*", default=None, help="family ids (default: every RL family)")
    args = parser.parse_args()
    # Only array families: MuJoCo and Meta-World batch through SyncVectorEnv (experiments/bench_mujoco.py).
    ids = args.families or [f for f in metarl.list_families(kind="rl") if isinstance(metarl.make_family(f), ArrayRLFamily)]

    load = os.getloadavg()
    print(f"# Environment throughput (env steps per second; {args.budget:g} s per measurement)\n")
    print(f"Command: `python {' '.join(sys.argv)}`  ")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, NumPy {np.__version__}, Gymnasium {gym.__version__}  "
    )
    print(f"Load average at start (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}\n")
    sizes = " | ".join(f"native@{n}" for n in NATIVE_SIZES)
    print(f"| family | single | sync@{SYNC_SIZE} | {sizes} | bare@{BARE_SIZE} | native/sync | native/bare |")
    print("|" + "---|" * (7 + len(NATIVE_SIZES) - 1))
    for family_id in ids:
        family = metarl.make_family(family_id)
        assert isinstance(family, RLFamily), f"{family_id} is not an RL family"
        tasks = family.sample_tasks(max(NATIVE_SIZES), "train")
        single = bench_single(family, args.budget)
        makers = [lambda t=t, f=family: f.make_env(t) for t in tasks[:SYNC_SIZE]]
        sync = bench_vector(SyncVectorEnv(makers, autoreset_mode=AutoresetMode.NEXT_STEP), args.budget)
        native = {n: bench_vector(family.make_vec_env(n, tasks[:n]), args.budget) for n in NATIVE_SIZES}
        bare = bench_bare(family, tasks[:BARE_SIZE], args.budget) if isinstance(family, ArrayRLFamily) else None
        top = native[max(NATIVE_SIZES)]
        cells = [fmt(single), fmt(sync), *(fmt(native[n]) for n in NATIVE_SIZES), fmt(bare)]
        ratios = [f"{top / sync:.0f}x", f"{top / bare:.2f}" if bare else "—"]
        print(f"| `{family_id}` | " + " | ".join(cells + ratios) + " |", flush=True)
    load = os.getloadavg()
    print(f"\nLoad average at end (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


if __name__ == "__main__":
    main()
