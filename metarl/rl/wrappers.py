"""Wrappers that let other RL libraries train on metarl's families.

:class:`RL2TrialEnv` turns a family into RL² trials for any single-env library (e.g.
sb3-contrib's ``RecurrentPPO``): one wrapper episode is one trial of ``K`` episodes in one
task, so a recurrent policy's state survives the episode ends inside the trial, and each
observation carries the previous action, reward and done flag, as RL² feeds them.
:class:`TaskObservationVecEnv` appends each sub-env's task parameters to its observations
(the *oracle* baseline).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metarl.core.task import Task
from metarl.rl.family import RLFamily


class PreviousStep:
    """RL²'s inputs beside the observation, for a batch of sub-envs: the previous action
    (one-hot if Discrete, clipped to the space if Box), reward and done flag; zeros at a
    trial's start.

    :meth:`inputs` gives ``[obs (one-hot if Discrete), previous action, reward, done]`` rows,
    of :attr:`observation_space`.
    """

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, num_envs: int):
        if not isinstance(act_space, (gym.spaces.Discrete, gym.spaces.Box)):
            raise TypeError(f"trial inputs need a Discrete or Box action space, got {act_space}")
        self.obs_space, self.act_space = obs_space, act_space
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.act_dim = int(act_space.n) if isinstance(act_space, gym.spaces.Discrete) else int(np.prod(act_space.shape))
        self.values = np.zeros((num_envs, self.act_dim + 2), np.float32)
        obs_dim = encode_observations(obs_space, np.asarray([obs_space.sample()])).shape[1]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim + self.act_dim + 2,), np.float32)

    def clear(self, rows: Any = slice(None)) -> None:
        """A trial starts in ``rows``: no previous step."""
        self.values[rows] = 0.0

    def record(self, actions: Any, rewards: Any, dones: Any, rows: Any = slice(None)) -> None:
        """The step just taken in ``rows`` (``actions``, ``rewards``, ``dones`` for those rows)."""
        n = len(self.values[rows])
        step = np.zeros((n, self.act_dim + 2), np.float32)
        space = self.act_space
        if isinstance(space, gym.spaces.Discrete):
            step[np.arange(n), np.asarray(actions, np.int64).reshape(n) - int(space.start)] = 1.0
        elif isinstance(space, gym.spaces.Box):
            low, high = space.low.ravel(), space.high.ravel()
            step[:, : self.act_dim] = np.clip(np.asarray(actions, np.float32).reshape(n, -1), low, high)
        step[:, -2] = rewards
        step[:, -1] = dones
        self.values[rows] = step

    def inputs(self, obs: np.ndarray) -> np.ndarray:
        """``[obs, previous action, reward, done]`` rows for a batch of observations."""
        return np.concatenate([encode_observations(self.obs_space, obs), self.values], axis=1)


class RL2TrialEnv(gym.Env):
    """A single env whose episodes are RL² trials of a family's tasks.

    Each reset draws a new task from ``split`` (with the env's own generator, seeded by
    ``reset(seed=...)``). Observations are ``[obs, previous action (one-hot if discrete),
    previous reward, previous done]`` (:class:`PreviousStep`); the wrapper episode terminates
    after ``K`` inner episodes.
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
        self._previous = PreviousStep(inner_obs, act, 1)
        self.observation_space = self._previous.observation_space
        self._count = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = (options or {}).get("task") or self.family.sample_tasks(1, self.split, self.np_random)[0]
        obs, info = self.env.reset(seed=int(self.np_random.integers(2**31)), options={"task": task})
        self._count = 0
        self._previous.clear()
        return self._previous.inputs(np.asarray(obs)[None])[0], info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        if done:
            self._count += 1
            if self._count < self.episodes:
                obs, _ = self.env.reset()
        trial_over = self._count >= self.episodes
        self._previous.record([action], [float(reward)], [done])
        return self._previous.inputs(np.asarray(obs)[None])[0], float(reward), trial_over, False, info


def task_features(task: Any) -> np.ndarray:
    """A task's parameters as a flat float32 vector: every number of its fields, nested tuples
    flattened in order (a bandit's arm probabilities, a goal, a pendulum's physics)."""
    values: list[float] = []

    def walk(value: Any) -> None:
        if isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, (bool, int, float, np.number)):
            values.append(float(value))
        else:
            raise TypeError(f"task field value {value!r} of {type(task).__name__} is not a number: task "
                            "features (an oracle's observation, a critic's input) need numeric task parameters")

    if not isinstance(task, Task):
        raise TypeError(f"expected a task (a metarl.core.task.Task), got {type(task).__name__}")
    walk(task.parameters())  # its shift is recorded as text, and is in the parameters already
    return np.asarray(values, dtype=np.float32)


def encode_observations(space: gym.Space, obs: np.ndarray) -> np.ndarray:
    """Batched observations as a float32 ``[N, dim]`` array: one-hot for Discrete, flattened for Box."""
    obs = np.asarray(obs)
    if isinstance(space, gym.spaces.Discrete):
        out = np.zeros((len(obs), int(space.n)), np.float32)
        out[np.arange(len(obs)), obs.astype(np.int64) - int(space.start)] = 1.0
        return out
    return obs.reshape(len(obs), -1).astype(np.float32, copy=False)


class TaskObservationVecEnv:
    """A family's batched env whose observations also carry each sub-env's task parameters
    (:func:`task_features`): the *oracle* setting, an upper bound for meta-learners that must
    infer the task from experience.

    A :class:`~metarl.rl.family.TaskVectorEnv` itself (``tasks``, ``set_tasks``,
    ``reset(options={"tasks"})``), so :func:`~metarl.rl.rollout.run_trials` and the SB3 adapter
    use it as they use the env it wraps. Observations are ``[obs (one-hot if Discrete), task]``;
    the ``final_obs`` of ``SAME_STEP`` autoreset get the same treatment.
    """

    def __init__(self, env: Any):
        self.env = env
        self.num_envs = env.num_envs
        self.metadata = env.metadata
        self.single_action_space = env.single_action_space
        self.action_space = env.action_space
        self.inner_observation_space = env.single_observation_space
        self._features = np.stack([task_features(t) for t in env.tasks])
        obs_dim = encode_observations(self.inner_observation_space,
                                      np.asarray([self.inner_observation_space.sample()])).shape[1]
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim + self._features.shape[1],), np.float32)

    @property
    def tasks(self) -> list[Any]:
        """The sub-envs' tasks."""
        return self.env.tasks

    def set_tasks(self, tasks: Any) -> None:
        """Give each sub-env its own task (and its features to the observations from the next reset)."""
        self.env.set_tasks(tasks)
        self._refresh()

    def _refresh(self) -> None:
        features = np.stack([task_features(t) for t in self.env.tasks])
        if features.shape != self._features.shape:
            raise ValueError(f"task parameters changed shape from {self._features.shape[1:]} to {features.shape[1:]}")
        self._features = features

    def observe(self, obs: np.ndarray) -> np.ndarray:
        """``[obs, task]`` rows for a batch of the wrapped env's observations."""
        return np.concatenate([encode_observations(self.inner_observation_space, obs), self._features], axis=1)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if options and "tasks" in options:
            self._refresh()
        return self.observe(obs), info

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            final = info["final_obs"]
            if final.dtype == object:  # SyncVectorEnv: one observation per sub-env, None where none ended
                rows = np.stack([f if m else obs[i] for i, (f, m) in enumerate(zip(final, info["_final_obs"], strict=True))])
            else:
                rows = final
            info = {**info, "final_obs": self.observe(rows)}
        return self.observe(obs), rewards, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        """Close the wrapped env."""
        self.env.close(**kwargs)
