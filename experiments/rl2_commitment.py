"""How trained RL² runs and tuned UCB1 spend the late pulls of a Bernoulli-bandit trial.

For each run directory (an RL² run on ``metarl/Bandit-v0``) and for UCB1 on the same test
tasks, one trial per task records every pull, then over the pulls from ``--late-from`` on:
how often the best arm is pulled, how often the most-pulled ("committed") arm is the best,
the share of late pulls on the committed arm, and the expected regret per pull of the
committed arm (best arm's probability minus its). Low exploration shows as a share near 1
on a committed arm that is often not the best.

    python experiments/rl2_commitment.py RUN_DIR [RUN_DIR ...] --tasks 10000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from metarl.agents.bandit_baselines import UCB1Agent, UCB1Config
from metarl.envs.bandit import BanditFamily, BanditTask
from metarl.rl.array_family import make_vec_env
from metarl.rl.rollout import collect
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, load_run, restore_agent


class _Recorder:
    """A trial policy that remembers the actions of the policy it wraps."""

    def __init__(self, policy: Any):
        self.policy, self.actions = policy, None

    def begin_trial(self, num_envs: int) -> None:
        self.policy.begin_trial(num_envs)

    def act(self, obs: Any) -> Any:
        self.actions = self.policy.act(obs)
        return self.actions

    def observe(self, *args: Any) -> None:
        self.policy.observe(*args)


def pulls(policy: Any, family: BanditFamily, tasks: Sequence[BanditTask], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One trial of ``policy`` on every task: the arm of every pull ``[tasks, n]`` and the
    total reward per trial ``[tasks]``."""
    env = make_vec_env(family, len(tasks), tasks, autoreset_mode=AutoresetMode.SAME_STEP)
    recorder = _Recorder(policy)
    trials = collect(env, recorder, family.episodes_per_trial, family.max_episode_steps, seed,
                     record=lambda: {"arm": torch.as_tensor(np.asarray(recorder.actions))})
    env.close()
    return trials.records["arm"].T.numpy(), trials.returns.sum(axis=1)


def commitment(arms: np.ndarray, probs: np.ndarray, late_from: int) -> dict[str, float]:
    """Statistics of the pulls ``arms[:, late_from:]`` (``arms`` ``[tasks, n]``, ``probs`` ``[tasks, k]``)."""
    late = arms[:, late_from:]
    rows = np.arange(len(arms))
    counts = np.stack([(late == a).sum(axis=1) for a in range(probs.shape[1])], axis=1)
    committed = counts.argmax(axis=1)
    best = probs.argmax(axis=1)
    return {
        "late pulls on the best arm": float((late == best[:, None]).mean()),
        "committed arm is the best": float((committed == best).mean()),
        "share of late pulls on the committed arm": float((counts[rows, committed] / late.shape[1]).mean()),
        "regret per pull of the committed arm": float((probs[rows, best] - probs[rows, committed]).mean()),
    }


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="RL² run directories on metarl/Bandit-v0")
    parser.add_argument("--tasks", type=int, default=10000, help="test tasks")
    parser.add_argument("--late-from", type=int, default=70, help="first pull (0-based) counted as late")
    parser.add_argument("--ucb-c", type=float, default=UCB1Config().c, help="UCB1's bonus scale (default: the tuned one)")
    args = parser.parse_args(argv)
    columns: list[tuple[str, dict[str, float], float]] = []
    for run_dir in args.runs:
        spec = load_run(run_dir)
        if not isinstance(spec.family, BanditFamily):
            parser.error(f"{run_dir} is a run on {spec.env_id}; this script reads Bernoulli-bandit runs")
        if not 0 <= args.late_from < spec.family.n:
            parser.error(f"--late-from must lie in [0, {spec.family.n}) for n={spec.family.n}")
        agent: Any = spec.build_agent()  # an RL² agent: it has trial_policy
        checkpoint = Path(run_dir) / "checkpoints" / CHECKPOINT
        restore_agent(agent, load_checkpoint(checkpoint), checkpoint)
        tasks = spec.family.sample_tasks(args.tasks, "test")
        probs = np.array([task.probs for task in tasks])
        for name, policy in ((Path(run_dir).name, agent.trial_policy(0)),
                             (f"ucb1 c={args.ucb_c:g} (k={spec.family.k})",
                              UCB1Agent(UCB1Config(c=args.ucb_c), spec.family).trial_policy(0))):
            arms, totals = pulls(policy, spec.family, tasks)
            columns.append((name, commitment(arms, probs, args.late_from), float(totals.mean())))
    keys = list(columns[0][1])
    lines = [f"pulls {args.late_from + 1}-end of {args.tasks} test tasks, one trial each",
             "", "| | mean total reward | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    lines += [f"| {name} | {total:.2f} | " + " | ".join(f"{stats[k]:.3f}" for k in keys) + " |"
              for name, stats, total in columns]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
