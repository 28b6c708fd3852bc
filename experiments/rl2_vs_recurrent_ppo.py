"""RL² (metarl) beside sb3-contrib's RecurrentPPO on the same bandit task and wall-clock budget.

Both learn on ``metarl/Bandit-v0`` (k=5, n=100 by default) for the same number of minutes,
single process, one torch thread each, then play one trial in each of the same 1,000
held-out test tasks. RecurrentPPO sees the RL² observation (``metarl.rl.wrappers.RL2TrialEnv``:
observation, previous action, reward and done flag; one wrapper episode = one trial), so its
LSTM state spans the trial exactly as RL²'s does. Needs ``pip install sb3-contrib``.

    python experiments/rl2_vs_recurrent_ppo.py --minutes 5
    python experiments/rl2_vs_recurrent_ppo.py --minutes 5 --skip rppo-default rppo-small rppo-fast   # RL², tuned RecurrentPPO
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import metarl
from metarl.agents.rl2 import RL2, RL2Config
from metarl.core.stats import mean_ci95
from metarl.rl.rollout import run_trials
from metarl.rl.sb3 import SB3VecEnv
from metarl.rl.wrappers import RL2TrialEnv


class RecurrentPPOTrialPolicy:
    """A trained RecurrentPPO model acting in batched trials (a TrialPolicy)."""

    def __init__(self, model, k: int):
        self.model, self.k = model, k

    def begin_trial(self, num_envs: int) -> None:
        self.state = None
        self.start = np.ones(num_envs, dtype=bool)
        self.prev = np.zeros((num_envs, self.k + 2), np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        x = np.concatenate([obs.reshape(len(obs), -1).astype(np.float32), self.prev], axis=1)
        actions, self.state = self.model.predict(x, state=self.state, episode_start=self.start, deterministic=False)
        self.start[:] = False
        return actions

    def observe(self, actions, rewards, dones, active, next_obs) -> None:
        self.prev[:] = 0.0
        self.prev[np.arange(len(actions)), actions] = 1.0
        self.prev[:, -2] = rewards
        self.prev[:, -1] = dones


def train_recurrent_ppo(family, minutes: float, seed: int, lstm: int, gamma: float, n_envs: int, **kwargs):
    """RecurrentPPO for ``minutes`` on RL² trials; ``kwargs`` go to RecurrentPPO (n_steps, n_epochs, ...).

    ``batched=True`` (in kwargs) steps the trials in metarl's SB3 adapter (one batched env,
    ``SB3VecEnv(trial_episodes=n)``) instead of a ``DummyVecEnv`` of ``RL2TrialEnv`` single envs.
    """
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class Deadline(BaseCallback):
        def __init__(self, seconds: float):
            super().__init__()
            self.seconds = seconds

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            return time.perf_counter() - self.start < self.seconds

    if kwargs.pop("batched", False):
        env = SB3VecEnv(family, n_envs, seed=seed, trial_episodes=family.episodes_per_trial)
    else:
        env = make_vec_env(lambda: RL2TrialEnv(family), n_envs=n_envs, seed=seed)
    policy_kwargs = {**({} if lstm == 256 else {"lstm_hidden_size": lstm}), **kwargs.pop("policy_kwargs", {})}
    model = RecurrentPPO("MlpLstmPolicy", env, gamma=gamma, seed=seed, verbose=0, device="cpu",
                         policy_kwargs=policy_kwargs or None, **kwargs)
    cb = Deadline(minutes * 60)
    t0 = time.perf_counter()
    model.learn(total_timesteps=10**10, callback=cb)
    return model, model.num_timesteps, time.perf_counter() - t0


# The tuned configuration (how it was chosen: experiments/RESULTS.md). RecurrentPPO's cost per
# step is Python-level overhead around small LSTM calls: a wide batch of trials (64) amortises
# it, two epochs over a long rollout (two whole 100-pull trials per sub-env) re-run the LSTM
# twice instead of ten times, and one LSTM shared by actor and critic with linear heads (as
# RL²'s GRU) halves the work; with so few, large minibatches a high learning rate pays.
TUNED = dict(lstm=64, gamma=0.9, n_envs=64, n_steps=200, n_epochs=2, batch_size=6400, learning_rate=1e-2,
             gae_lambda=1.0, ent_coef=0.01, batched=True,
             policy_kwargs={"net_arch": [], "shared_lstm": True, "enable_critic_lstm": False})
# A faster configuration that did not learn in 5 minutes (separate LSTMs and MLP heads, lr 1e-3).
FAST = dict(lstm=32, gamma=0.9, n_envs=32, n_steps=200, n_epochs=2, batch_size=3200, learning_rate=1e-3,
            gae_lambda=1.0, ent_coef=0.01, batched=True, policy_kwargs={"net_arch": {"pi": [32], "vf": [32]}})


def train_rl2(family, minutes: float, seed: int, cfg: RL2Config):
    agent = RL2(cfg, family, seed=seed)
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < minutes * 60:
        steps += agent.train_iteration().env_steps
    return agent, steps, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--skip", nargs="*", default=[],
                        help="rows to skip: rl2, rppo-default, rppo-small (LSTM 64, gamma 0.9), rppo-tuned, rppo-fast")
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = metarl.make_family("metarl/Bandit-v0", k=args.k, n=args.n)
    tasks = family.sample_tasks(args.tasks, "test", metarl.task_rng(0, "test"))
    print(f"metarl/Bandit-v0 k={args.k} n={args.n}, {args.minutes:g} min each, seed {args.seed}, "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print("| method | config | env steps | steps/s | held-out mean total reward (95% CI) | load average |")
    print("|---|---|---|---|---|---|")
    rows = [
        ("rl2", "metarl RL²", "GRU 64, 1,024 trials in lockstep, PPO", lambda: train_rl2(family, args.minutes, args.seed, RL2Config(hidden_size=64, lr=3e-3))),
        ("rppo-default", "RecurrentPPO", "defaults (LSTM 256), 8 envs", lambda: train_recurrent_ppo(family, args.minutes, args.seed, 256, 0.99, 8)),
        ("rppo-small", "RecurrentPPO", "LSTM 64, gamma 0.9, 8 envs", lambda: train_recurrent_ppo(family, args.minutes, args.seed, 64, 0.9, 8)),
        ("rppo-tuned", "RecurrentPPO", "tuned: shared LSTM 64, linear heads, 64 trials x 200 steps, 2 epochs, "
         "2 minibatches, lr 1e-2, gamma 0.9, lambda 1, metarl's batched env",
         lambda: train_recurrent_ppo(family, args.minutes, args.seed, **TUNED)),
        ("rppo-fast", "RecurrentPPO", "LSTM 32 (actor) + 32 (critic), MLP 32, 32 trials x 200 steps, 2 epochs, "
         "2 minibatches, lr 1e-3, gamma 0.9, lambda 1, metarl's batched env",
         lambda: train_recurrent_ppo(family, args.minutes, args.seed, **FAST)),
    ]
    for key, name, config, fn in rows:
        if key in args.skip:
            continue
        load = os.getloadavg()[0]
        model, steps, seconds = fn()
        policy = model.trial_policy(1) if isinstance(model, RL2) else RecurrentPPOTrialPolicy(model, args.k)
        scores = run_trials(policy, family, tasks, seed=1).returns.sum(axis=1)
        m, ci = mean_ci95(scores)
        print(f"| {name} | {config} | {steps:,} | {steps / seconds:,.0f} | {m:.2f} ± {ci:.2f} | "
              f"{load:.2f} → {os.getloadavg()[0]:.2f} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
