"""Batched trials: many tasks stepping in lockstep, with the episode bookkeeping of RL².

A *trial* is ``K`` consecutive episodes in one task. All trials of a batch run in one
batched env (one task per sub-env, ``SAME_STEP`` autoreset so no step is spent on
resets). A sub-env that has finished its ``K`` episodes keeps stepping until the
slowest is done, but its rewards no longer count (``active`` is False).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.batched import RLFamily
from metarl.task import Task


class TrialPolicy(Protocol):
    """A policy that adapts within a trial (RL²'s hidden state, a bandit's counts)."""

    def begin_trial(self, num_envs: int) -> None:
        """Forget everything: a new trial starts in every sub-env."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for all sub-envs given their observations."""

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        """Learn from the last step: rewards, episode ends, which sub-envs still count, and
        the observation the step led to (the episode's last one where it ended, not the
        reset observation that replaced it)."""


class TrialTracker:
    """Counts the episodes of each sub-env inside a trial of ``episodes`` episodes."""

    def __init__(self, num_envs: int, episodes: int):
        self.episodes = episodes
        self.episode = np.zeros(num_envs, dtype=np.int64)
        self.returns = np.zeros((num_envs, episodes))
        self.lengths = np.zeros((num_envs, episodes), dtype=np.int64)
        self._all = np.arange(num_envs)

    @property
    def active(self) -> np.ndarray:
        """Sub-envs still inside their trial."""
        return self.episode < self.episodes

    @property
    def finished(self) -> bool:
        """Whether every sub-env has completed its trial."""
        return bool((self.episode >= self.episodes).all())

    def record(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Book one step; return the mask of sub-envs for which the step counted."""
        active = self.active
        rows = self._all if active.all() else np.flatnonzero(active)
        eps = self.episode[rows]
        self.returns[rows, eps] += rewards[rows]
        self.lengths[rows, eps] += 1
        self.episode += dones & active
        return active


def final_observations(obs: np.ndarray, dones: np.ndarray, info: dict) -> np.ndarray:
    """What each sub-env's step led to: ``info["final_obs"]`` where an episode ended under
    ``SAME_STEP`` autoreset, the returned observation elsewhere.

    Accepts both layouts: metarl's batched array and ``SyncVectorEnv``'s per-env objects.
    """
    if "final_obs" not in info or not dones.any():
        return obs
    mask = np.asarray(info.get("_final_obs", dones), dtype=bool)
    final = info["final_obs"]
    out = obs.copy()
    if final.dtype == object:  # SyncVectorEnv: one object per sub-env, only where it ended
        for i in np.flatnonzero(mask):
            out[i] = final[i]
    else:
        out[mask] = final[mask]
    return out


@dataclasses.dataclass
class TrialResult:
    """Per-task, per-episode returns of a batch of trials."""

    returns: np.ndarray  # [num_tasks, episodes]
    lengths: np.ndarray  # [num_tasks, episodes]


def run_trials(
    policy: TrialPolicy,
    family: RLFamily,
    tasks: Sequence[Task],
    episodes: int | None = None,
    seed: int = 0,
    batch_size: int = 4096,
) -> TrialResult:
    """Run one trial of ``episodes`` episodes (default: the family's) in each task.

    Tasks are processed in batches of ``batch_size`` sub-envs; batch ``b`` resets its env
    with seed ``seed + b``, so results depend only on the seed and the tasks.
    """
    episodes = family.episodes_per_trial if episodes is None else episodes
    if episodes < 1:
        raise ValueError(f"episodes per trial must be >= 1, got {episodes}")
    returns, lengths = [], []
    for b, start in enumerate(range(0, len(tasks), batch_size)):
        chunk = list(tasks[start : start + batch_size])
        env = family.make_vec_env(len(chunk), chunk, autoreset_mode=AutoresetMode.SAME_STEP)
        obs, _ = env.reset(seed=seed + b)
        tracker = TrialTracker(len(chunk), episodes)
        policy.begin_trial(len(chunk))
        for _ in range(episodes * family.max_episode_steps):
            actions = policy.act(obs)
            obs, rewards, terminated, truncated, info = env.step(actions)
            dones = terminated | truncated
            active = tracker.record(rewards, dones)
            policy.observe(actions, rewards, dones, active, final_observations(obs, dones, info))
            if tracker.finished:
                break
        env.close()
        returns.append(tracker.returns)
        lengths.append(tracker.lengths)
    return TrialResult(np.concatenate(returns), np.concatenate(lengths))
