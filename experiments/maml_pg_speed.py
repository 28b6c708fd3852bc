"""Seconds per MAML-PG meta-iteration: metarl's batched implementation beside a plain
loop over tasks, same update, same process.

The batched version is ``MAMLPG.train_iteration``: all tasks and trajectories step in one
batched env, and the inner step runs for all tasks in one ``vmap`` over ``torch.func.grad``.
The loop version does what a straightforward implementation does: for each task, sample
its trajectories in its own batched env (one per task, the trajectories still batched),
take the inner step with ``torch.autograd.grad(..., create_graph=True)``, sample again,
and sum the per-task objectives; the TRPO step (same conjugate gradient, line search and
KL limit) is then taken on that sum. Both use one torch thread by default.

    python experiments/maml_pg_speed.py                     # the MAML paper's 2D-navigation setup
    python experiments/maml_pg_speed.py --iterations 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.func import functional_call

import metarl
from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig, Rollout
from metarl.core.inner_loop import params_of
from metarl.rl.losses import per_task_mean
from metarl.rl.trpo import trpo_step


class LoopMAMLPG(MAMLPG):
    """The same algorithm, written as a loop over tasks with ``create_graph=True``."""

    def _adapt_one(self, params: dict[str, torch.Tensor], ro: Rollout, create_graph: bool) -> dict[str, torch.Tensor]:
        loss = self._inner_loss(lambda o: functional_call(self.policy, params, (o,)), ro.batch()).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        return {k: p - self.config.inner_lr * g for (k, p), g in zip(params.items(), grads, strict=True)}

    def train_iteration(self):  # type: ignore[override]
        cfg = self.config
        start = time.perf_counter()
        tasks = self.family.sample_tasks(cfg.meta_batch, "train", self.task_rng)
        data = []
        for task in tasks:
            theta = {k: v.detach() for k, v in params_of(self.policy).items()}
            pre = self.rollout([task], theta, False, cfg.trajectories, self.generator, int(self.env_rng.integers(2**31)))
            self.add_advantages(pre)
            with torch.enable_grad():
                theta_grad = {k: v.clone().requires_grad_() for k, v in theta.items()}
                adapted = {k: v.detach() for k, v in self._adapt_one(theta_grad, pre, False).items()}
            post = self.rollout([task], adapted, False, cfg.trajectories, self.generator, int(self.env_rng.integers(2**31)))
            self.add_advantages(post)
            data.append((pre, post))

        sampled = time.perf_counter()

        def objective() -> tuple[torch.Tensor, torch.Tensor]:
            losses, kls = [], []
            for pre, post in data:
                with torch.enable_grad():
                    adapted = self._adapt_one(params_of(self.policy), pre, create_graph=True)
                d = functional_call(self.policy, adapted, (post.obs[0],))
                logp = self.dist.log_prob(d, post.actions[0])
                assert post.advantages is not None
                ratio = torch.exp(logp - post.logp[0])
                losses.append(-per_task_mean((ratio * post.advantages[0])[None], post.mask[:1]))
                kls.append(per_task_mean(self.dist.kl(post.dist[0], d)[None], post.mask[:1]))
            return torch.cat(losses).mean(), torch.cat(kls).mean()

        trpo_step(self.meta_parameters(), objective, cfg.max_kl, cfg.cg_iters, cfg.cg_damping, cfg.ls_backtrack,
                  cfg.ls_steps)
        self.iterations += 1
        return _Stats({"time/sample_seconds": sampled - start, "time/update_seconds": time.perf_counter() - sampled})


class _Stats:
    def __init__(self, scalars: dict[str, float]):
        self.scalars = scalars


def time_iterations(agents: dict[str, MAMLPG], n: int) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Seconds per meta-iteration, and its sampling and update parts, for each implementation;
    the implementations alternate, so a drift of the machine's speed hits both alike."""
    for agent in agents.values():
        agent.train_iteration()  # warm-up: env construction, first-call overheads
    out: dict[str, tuple[list[float], list[float], list[float]]] = {name: ([], [], []) for name in agents}
    for _ in range(n):
        for name, agent in agents.items():
            start = time.perf_counter()
            stats = agent.train_iteration()
            out[name][0].append(time.perf_counter() - start)
            out[name][1].append(stats.scalars["time/sample_seconds"])
            out[name][2].append(stats.scalars["time/update_seconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3, help="timed meta-iterations per implementation")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    family = metarl.make_family("metarl/Nav2D-v0")  # horizon 100
    cfg = MAMLPGConfig(meta_batch=20, trajectories=20, inner_lr=0.1, first_order=args.first_order)
    load = os.getloadavg()
    rows = time_iterations({"batched (metarl)": MAMLPG(cfg, family, seed=0),
                            "loop over tasks": LoopMAMLPG(cfg, family, seed=0)}, args.iterations)
    print(f"\nMAML-PG meta-iteration on Nav2D (20 tasks x 20 trajectories x 100 steps, TRPO, "
          f"{'first' if args.first_order else 'second'} order), {args.threads} thread(s); "
          f"load average at start {load[0]:.2f}, at end {os.getloadavg()[0]:.2f}\n")
    print("| implementation | seconds per meta-iteration (median, min-max) | sampling | meta-update |")
    print("|---|---|---|---|")
    for name, (t, smp, upd) in rows.items():
        print(f"| {name} | {statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f}) | {statistics.median(smp):.2f} "
              f"| {statistics.median(upd):.2f} |")
    ratio = statistics.median(rows["loop over tasks"][0]) / statistics.median(rows["batched (metarl)"][0])
    print(f"\nspeed-up of the batched implementation: {ratio:.1f}x")


if __name__ == "__main__":
    main()
