"""Trajectories of a trained RL² policy on 2D navigation: episode 1 explores, episode 2 exploits.

Loads a run directory of ``python -m metarl.train --algo rl2 --env metarl/Nav2D-v0
--trial-episodes 2``, plays one trial in each of ``--tasks`` held-out goals and draws the
first episode's path dashed and the second's solid, one colour per goal.

    python experiments/rl2_nav2d_plot.py RUN_DIR --out experiments/results/rl2_nav2d_trajectories.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from matplotlib.figure import Figure

from envs.nav2d import plot_trajectories
from metarl.cli import family_default, from_dict
from metarl.registry import algo_spec
from metarl.rollout import final_observations
from metarl.task import task_rng
from metarl.trainer import CHECKPOINT, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--out", default="experiments/results/rl2_nav2d_trajectories.png")
    args = parser.parse_args()
    cfg = json.loads((args.run_dir / "config.json").read_text())
    agent_cls = algo_spec("rl2").load()
    family = family_default(cfg["env"], cfg["family"])
    agent = agent_cls(from_dict(agent_cls.config_class, cfg["agent"], "config.json"), family, seed=0)
    agent.load_state_dict(load_checkpoint(args.run_dir / "checkpoints" / CHECKPOINT)["agent"])
    tasks = family.sample_tasks(args.tasks, "test", task_rng(0, "test"))
    env = family.make_vec_env(len(tasks), tasks, autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = env.reset(seed=0)
    policy = agent.trial_policy(0)
    policy.begin_trial(len(tasks))
    episode = np.zeros(len(tasks), dtype=int)
    paths = [[[np.zeros(2)], [np.zeros(2)]] for _ in tasks]
    with torch.no_grad():
        for _ in range(2 * family.max_episode_steps):
            actions = policy.act(obs)
            obs, rewards, term, trunc, info = env.step(actions)
            done = term | trunc
            nxt = final_observations(obs, done, info)
            for i in range(len(tasks)):
                if episode[i] < 2:
                    paths[i][episode[i]].append(nxt[i].copy())
            policy.observe(actions, rewards, done, episode < 2, nxt)
            episode += done
            if (episode >= 2).all():
                break
    fig = Figure(figsize=(9, 4.5), dpi=110)
    goals = [t.goal for t in tasks]
    for e, title in enumerate(("episode 1: explore", "episode 2: exploit")):
        ax = fig.add_subplot(1, 2, e + 1)
        plot_trajectories([np.array(p[e]) for p in paths], goals, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
