"""Data-parallel scaling on this machine: RL² (and MAML-PG) training throughput with 1 and 2
processes over the same global meta-batch, the way ``torchrun --nproc_per_node=N -m
metarl.train`` splits it (gloo on CPU, one torch thread per process).

Each configuration builds the agent through the library (``metarl.core.distributed`` joins the
processes), runs ``--warmup`` iterations, then times ``--iterations`` training iterations on
rank 0 (all processes step in lockstep: every iteration ends with the gradient all-reduce) and
prints environment steps per second of the whole world, and the ratio to one process: with the
same trials in all (strong scaling: the same run, faster) and, for RL², with ``--num-trials``
per process (weak scaling: twice the trials per iteration in the same time).

    python experiments/bench_scale.py                          # RL² bandit k=5, n=100, 1,024 trials
    python experiments/bench_scale.py --algo maml_pg --iterations 5
    python experiments/bench_scale.py --quick                  # a few seconds (the test)

Run it alone on the machine: two processes on two cores are what is measured; any other job
takes a core away from one of them. The load average is printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def build(algo: str, quick: bool, trials: int = 1024) -> Any:
    """The agent of one process, built as ``metarl.train`` builds it (same seed everywhere)."""
    if algo == "rl2":
        from metarl.agents.rl2 import RL2, RL2Config
        from metarl.envs.bandit import BanditFamily

        return RL2(RL2Config(num_trials=trials), BanditFamily(k=5, n=10 if quick else 100), seed=0)
    from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig
    from metarl.envs.nav2d import Nav2DFamily

    return MAMLPG(MAMLPGConfig(meta_batch=4 if quick else 20, trajectories=4 if quick else 20),
                  Nav2DFamily(horizon=20 if quick else 100), seed=0)


def _run(rank: int, size: int, algo: str, warmup: int, iterations: int, quick: bool, store: str, out: str,
         trials: int) -> None:
    torch.set_num_threads(1)
    if size > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    try:
        agent = build(algo, quick, trials)
        for _ in range(warmup):
            agent.train_iteration()
        steps = 0
        start = time.perf_counter()
        for _ in range(iterations):
            steps += agent.train_iteration().env_steps  # every process's steps (all-reduced)
        seconds = time.perf_counter() - start
        if rank == 0:
            Path(out).write_text(json.dumps({"steps": steps, "seconds": seconds}))
    finally:
        if size > 1:
            dist.barrier()  # no process tears the group down while another still uses it
            dist.destroy_process_group()


def measure(algo: str, size: int, warmup: int, iterations: int, quick: bool, trials: int = 1024) -> dict[str, float]:
    """Environment steps per second of ``size`` processes training one agent together."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(_run, args=(size, algo, warmup, iterations, quick, os.path.join(tmp, "store"), out, trials), nprocs=size)
        result = json.loads(Path(out).read_text())
    return {"processes": size, **result, "steps_per_second": result["steps"] / result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=["rl2", "maml_pg"], default="rl2")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--num-trials", type=int, default=1024, help="RL²'s --num-trials over all processes")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the script)")
    args = parser.parse_args()
    if args.quick:
        args.num_trials = 64
    load = os.getloadavg()
    rows = []
    for scaling in ("strong", "weak") if args.algo == "rl2" else ("strong",):
        for n in args.processes:
            trials = args.num_trials * (n if scaling == "weak" else 1)
            if scaling == "weak" and n == 1:
                continue  # the same run as strong scaling's first row
            rows.append({**measure(args.algo, n, args.warmup, args.iterations, args.quick, trials),
                         "scaling": scaling, "trials": trials})
    base = rows[0]["steps_per_second"]
    what = (f"RL², bandit k=5 n=100, --num-trials {args.num_trials} in all" if args.algo == "rl2"
            else "MAML-PG, Nav2D, --meta-batch 20 x 20 trajectories in all")
    what = "quick sizes (a smoke test)" if args.quick else what
    print(f"{what}; {os.cpu_count()} CPU cores, one torch thread per process, gloo; "
          f"load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print("| processes | trials in all | iterations | env steps | seconds | env steps/s | vs 1 process |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['processes']} | {r.get('trials', '-')} | {args.iterations} | {r['steps']:,} | {r['seconds']:.1f} | "
              f"{r['steps_per_second']:,.0f} | {r['steps_per_second'] / base:.2f}x |")


if __name__ == "__main__":
    main()
