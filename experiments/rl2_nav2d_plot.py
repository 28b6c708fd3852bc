"""Trajectories of a trained RL² policy on 2D navigation: episode 1 explores, episode 2 exploits.

Loads a run directory of ``python -m metarl.train --algo rl2 --env metarl/Nav2D-v0
--trial-episodes 2``, plays one trial in each of ``--tasks`` held-out goals and draws the
first episode's path dashed and the second's solid, one colour per goal.

    python experiments/rl2_nav2d_plot.py RUN_DIR --out experiments/results/rl2_nav2d_trajectories.png
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from metarl.core.seeding import task_rng
from metarl.envs.nav2d import plot_trajectories
from metarl.rl.agent import TrialAgent
from metarl.rl.rollout import TrialPolicy, run_trials
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, load_run


class PathRecorder:
    """A trial policy that acts as ``policy`` does and records where each step led, per episode."""

    def __init__(self, policy: TrialPolicy, episodes: int):
        self.policy, self.episodes = policy, episodes
        self.paths: list[list[list[np.ndarray]]] = []
        self.episode = np.zeros(0, dtype=int)

    def begin_trial(self, num_envs: int) -> None:
        self.policy.begin_trial(num_envs)
        self.paths = [[[np.zeros(2)] for _ in range(self.episodes)] for _ in range(num_envs)]
        self.episode = np.zeros(num_envs, dtype=int)

    def act(self, obs: np.ndarray) -> Any:
        return self.policy.act(obs)

    def observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray,
                next_obs: np.ndarray) -> None:
        for i in np.flatnonzero(active):
            self.paths[i][self.episode[i]].append(np.asarray(next_obs[i], dtype=np.float64).copy())
        self.episode += dones & active
        self.policy.observe(actions, rewards, dones, active, next_obs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--out", default="experiments/results/rl2_nav2d_trajectories.png")
    args = parser.parse_args()
    spec = load_run(args.run_dir)
    agent = spec.build_agent()
    agent.load_state_dict(load_checkpoint(args.run_dir / "checkpoints" / CHECKPOINT)["agent"])
    tasks = spec.family.sample_tasks(args.tasks, "test", task_rng(0, "test"))
    if not isinstance(agent, TrialAgent):
        raise SystemExit(f"{args.run_dir} is a {spec.agent_cls.name} run; this plot needs an RL² run")
    recorder = PathRecorder(agent.trial_policy(0), episodes=2)
    with torch.no_grad():
        run_trials(recorder, agent.family, tasks, episodes=2, seed=0)
    fig = Figure(figsize=(9, 4.5), dpi=110)
    goals = [t.goal for t in tasks]
    for e, title in enumerate(("episode 1: explore", "episode 2: exploit")):
        ax = fig.add_subplot(1, 2, e + 1)
        plot_trajectories([np.array(p[e]) for p in recorder.paths], goals, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
