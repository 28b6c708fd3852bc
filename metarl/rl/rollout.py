"""Batched trials: many tasks stepping in lockstep, with the episode bookkeeping of RL².

A *trial* is ``K`` consecutive episodes in one task. All trials of a batch run in one
batched env (one task per sub-env, ``SAME_STEP`` autoreset so no step is spent on
resets). A sub-env that has finished its ``K`` episodes keeps stepping until the
slowest is done, but its rewards no longer count (``active`` is False).

:func:`collect` is the one rollout loop of metarl: RL² training (trials of ``K``
episodes, recording what the policy computed), MAML-PG sampling (trials of one episode)
and every evaluation of a trial policy (:func:`run_trials`) go through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from metarl.rl.array_family import make_vec_env
from metarl.rl.backend import Array, device_of, namespace, to_numpy
from metarl.rl.family import RLFamily, TaskVectorEnv


class TrialPolicy(Protocol):
    """A policy that adapts within a trial (RL²'s hidden state, a bandit's counts)."""

    def begin_trial(self, num_envs: int) -> None:
        """Forget everything: a new trial starts in every sub-env."""

    def act(self, obs: np.ndarray) -> Any:
        """Env actions for all sub-envs given their observations (tensors for a device env's
        tensors: :meth:`~metarl.rl.spaces.SpaceCodec.to_env`)."""

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        """Learn from the last step: rewards, episode ends, which sub-envs still count, and
        the observation the step led to (the episode's last one where it ended, not the
        reset observation that replaced it)."""


class TrialTracker:
    """Counts the episodes of each sub-env inside a trial of ``episodes`` episodes.

    Its arrays are NumPy, or tensors on the device of ``like`` (the env's observations) for a
    device env, so that booking a step never copies the env's results to the host.
    """

    def __init__(self, num_envs: int, episodes: int, like: Array | None = None):
        xp, device = (np, "cpu") if like is None else (namespace(like), device_of(like))
        self.episodes = episodes
        self.episode = xp.zeros(num_envs, dtype=xp.int64, device=device)
        self.returns = xp.zeros((num_envs, episodes), dtype=xp.float64, device=device)
        self.lengths = xp.zeros((num_envs, episodes), dtype=xp.int64, device=device)
        self._all = xp.arange(num_envs, device=device)

    @property
    def active(self) -> Array:
        """Sub-envs still inside their trial."""
        return self.episode < self.episodes

    @property
    def finished(self) -> bool:
        """Whether every sub-env has completed its trial (reads a device tracker's counts)."""
        return bool((self.episode >= self.episodes).all())

    def record(self, rewards: Array, dones: Array) -> Array:
        """Book one step; return the mask of sub-envs for which the step counted."""
        active = self.active
        if isinstance(active, torch.Tensor):
            # Whole-batch updates with a mask: selecting the active rows would wait for the device.
            eps = self.episode.clamp(max=self.episodes - 1)
            self.returns[self._all, eps] += torch.where(active, rewards, 0.0)
            self.lengths[self._all, eps] += active
        else:
            rows = self._all if active.all() else np.flatnonzero(active)
            eps = self.episode[rows]
            self.returns[rows, eps] += rewards[rows]
            self.lengths[rows, eps] += 1
        self.episode += dones & active
        return active


def final_observations(obs: Array, dones: Array, info: dict[str, Any]) -> Array:
    """What each sub-env's step led to: ``info["final_obs"]`` where an episode ended under
    ``SAME_STEP`` autoreset, the returned observation elsewhere.

    Accepts the three layouts: metarl's batched array, a device env's tensor (selected with
    its mask, without reading the device), and ``SyncVectorEnv``'s per-env objects.
    """
    if isinstance(obs, torch.Tensor) and "final_obs" in info:
        mask = info["_final_obs"]
        return torch.where(mask.view(-1, *([1] * (obs.dim() - 1))), info["final_obs"], obs)
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
class Trials:
    """A batch of trials: per-sub-env, per-episode returns and lengths, and, when recorded,
    time-major ``[steps, num_envs, ...]`` tensors of what happened at every step."""

    returns: np.ndarray  # [num_envs, episodes], undiscounted
    lengths: np.ndarray  # [num_envs, episodes]
    records: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    """What the policy computed at each step (see :func:`collect`'s ``record``), plus
    ``rewards`` (zero where the step did not count) and ``active`` (where it did)."""

    @property
    def env_steps(self) -> int:
        """Environment steps that counted."""
        return int(self.lengths.sum())


def collect(
    env: TaskVectorEnv[Any],
    policy: TrialPolicy,
    episodes: int,
    max_episode_steps: int,
    seed: int,
    record: Callable[[], Mapping[str, torch.Tensor]] | None = None,
    device: torch.device | str = "cpu",
) -> Trials:
    """Run one trial of ``episodes`` episodes in every sub-env of ``env`` (``SAME_STEP``
    autoreset, its tasks already set), resetting it with ``seed`` first.

    With ``record``, called after every ``policy.act``, the tensors it returns (batch first)
    are stacked into ``Trials.records``, with the step's ``rewards`` and ``active`` mask on
    ``device``.
    """
    if episodes < 1:
        raise ValueError(f"episodes per trial must be >= 1, got {episodes}")
    obs, _ = env.reset(seed=seed)
    tracker = TrialTracker(env.num_envs, episodes, like=obs)
    # Whether every trial has ended is read on the host: for an env on an accelerator, once
    # an episode's length (a wait for the device per episode, not per step), and never before
    # ``episodes`` steps, the earliest a trial can end (so never within a bandit's trial).
    on_accelerator = isinstance(obs, torch.Tensor) and obs.device.type != "cpu"
    check_every, check_from = (max_episode_steps, episodes) if on_accelerator else (1, 1)
    policy.begin_trial(env.num_envs)
    steps: dict[str, list[torch.Tensor]] = {}
    for t in range(episodes * max_episode_steps):
        actions = policy.act(obs)
        if record is not None:
            for key, value in record().items():
                steps.setdefault(key, []).append(value)
        obs, rewards, terminated, truncated, info = env.step(actions)
        dones = terminated | truncated
        active = tracker.record(rewards, dones)
        policy.observe(actions, rewards, dones, active, final_observations(obs, dones, info))
        if record is not None:
            steps.setdefault("rewards", []).append(torch.as_tensor(rewards * active, dtype=torch.float32, device=device))
            steps.setdefault("active", []).append(torch.as_tensor(active, device=device))
        if t + 1 >= check_from and (t + 1) % check_every == 0 and tracker.finished:
            break
    return Trials(to_numpy(tracker.returns), to_numpy(tracker.lengths), {k: torch.stack(v) for k, v in steps.items()})


def run_trials(
    policy: TrialPolicy,
    family: RLFamily[Any],
    tasks: Sequence[Any],
    episodes: int | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    wrap: Callable[[TaskVectorEnv[Any]], TaskVectorEnv[Any]] | None = None,
    device: torch.device | str | None = None,
) -> Trials:
    """Run one trial of ``episodes`` episodes (default: the family's) in each task.

    ``wrap`` transforms each batched env before the policy sees it (e.g.
    :class:`~metarl.rl.wrappers.TaskObservationVecEnv`, the oracle's observations).

    Tasks are processed in batches of ``batch_size`` sub-envs (fewer for a family whose
    environments are large: :meth:`RLFamily.eval_batch`); batch ``b`` resets its env with seed
    ``seed + b``, so results depend only on the seed and the tasks. ``device`` runs an array
    family's envs on torch tensors there (the policy then gets tensors).
    """
    episodes = family.episodes_per_trial if episodes is None else episodes
    batch_size = family.eval_batch(batch_size)
    returns, lengths = [], []
    for b, start in enumerate(range(0, len(tasks), batch_size)):
        chunk = list(tasks[start : start + batch_size])
        env = make_vec_env(family, len(chunk), chunk, autoreset_mode=AutoresetMode.SAME_STEP, device=device)
        if wrap is not None:
            env = wrap(env)
        trials = collect(env, policy, episodes, family.max_episode_steps, seed + b)
        env.close()
        returns.append(trials.returns)
        lengths.append(trials.lengths)
    return Trials(np.concatenate(returns), np.concatenate(lengths))
