"""Wrappers that let other RL libraries train on metarl's families.

:class:`RL2TrialEnv` turns a family into RL² trials for any single-env library (e.g.
sb3-contrib's ``RecurrentPPO``): one wrapper episode is one trial of ``K`` episodes in one
task, so a recurrent policy's state survives the episode ends inside the trial, and each
observation carries the previous action, reward and done flag, as RL² feeds them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.rl.family import RLFamily


class RL2TrialEnv(gym.Env):
    """A single env whose episodes are RL² trials of a family's tasks.

    Each reset draws a new task from ``split`` (with the env's own generator, seeded by
    ``reset(seed=...)``). Observations are ``[obs, previous action (one-hot if discrete),
    previous reward, previous done]``; the wrapper episode terminates after ``K`` inner
    episodes.
    """

    def __init__(self, family: RLFamily, split: str = "train", episodes_per_trial: int | None = None):
        self.family = family
        self.split = split
        self.episodes = episodes_per_trial or family.episodes_per_trial
        self.env = family.make_env()
        inner_obs, act = self.env.observation_space, self.env.action_space
        if not isinstance(inner_obs, gym.spaces.Box):
            raise TypeError(f"RL2TrialEnv needs a Box observation space, got {inner_obs}")
        if not isinstance(act, (gym.spaces.Discrete, gym.spaces.Box)):
            raise TypeError(f"RL2TrialEnv needs a Discrete or Box action space, got {act}")
        self.action_space = act
        self._discrete = isinstance(act, gym.spaces.Discrete)
        self._act_dim = int(act.n) if isinstance(act, gym.spaces.Discrete) else int(np.prod(act.shape))
        size = int(np.prod(inner_obs.shape)) + self._act_dim + 2
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._count = 0

    def _obs(self, obs: Any, action: Any, reward: float, done: bool) -> np.ndarray:
        prev = np.zeros(self._act_dim, np.float32)
        if action is not None:
            space = self.action_space
            if isinstance(space, gym.spaces.Box):
                prev[:] = np.clip(np.asarray(action, np.float32).ravel(), space.low.ravel(), space.high.ravel())
            else:
                prev[int(action)] = 1.0
        return np.concatenate([np.asarray(obs, np.float32).ravel(), prev, [reward, float(done)]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = (options or {}).get("task") or self.family.sample_tasks(1, self.split, self.np_random)[0]
        obs, info = self.env.reset(seed=int(self.np_random.integers(2**31)), options={"task": task})
        self._count = 0
        return self._obs(obs, None, 0.0, False), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        if done:
            self._count += 1
            if self._count < self.episodes:
                obs, _ = self.env.reset()
        trial_over = self._count >= self.episodes
        return self._obs(obs, action, float(reward), done), float(reward), trial_over, False, info
