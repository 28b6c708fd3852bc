"""Task families over existing Gymnasium environments: each task sets some of an environment's
parameters (its physics, its goal) or replaces its reward.

A :class:`GymnasiumFamily` names a Gymnasium id and says how a task applies to the environment
(:meth:`~GymnasiumFamily.apply_task`, called before every reset) and, if it changes the reward,
how (:meth:`~GymnasiumFamily.task_reward`); it gets a single env and a batched env (a
``SyncVectorEnv`` of single envs, one task each) for free. The MuJoCo locomotion families are
built this way; so is a user's family in a few lines::

    @dataclasses.dataclass(frozen=True)
    class PoleLengths(GymnasiumFamily[PoleTask]):
        gym_id: ClassVar[str] = "CartPole-v1"
        task_type = PoleTask

        def _sample_tasks(self, n, split, rng):
            return [PoleTask(float(x)) for x in rng.uniform(*self.ranges[split], n)]

        def apply_task(self, env, task, defaults):
            env.length, env.polemass_length = task.half_length, env.masspole * task.half_length
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.core.task import TaskT
from metarl.rl.envs import TaskEnv, TaskSyncVectorEnv
from metarl.rl.family import Episodic, RLFamily


class GymnasiumTaskEnv(TaskEnv[TaskT]):
    """One Gymnasium environment (unwrapped: no ``TimeLimit``, so that ``SyncVectorEnv``
    sub-envs expose ``task``) whose parameters or reward follow a task.

    ``reset(options={"task": task})`` switches the task; a reset without that option keeps the
    current one. The family's ``apply_task`` runs before every reset, so a task's parameters
    take effect at the next reset, a replaced reward from the next step. ``info`` is the
    environment's plus ``reward_gymnasium``, its own reward. Episodes are truncated after the
    family's ``horizon`` steps.
    """

    family: GymnasiumFamily[TaskT]

    def __init__(self, family: GymnasiumFamily[TaskT], task: TaskT | None = None, render_mode: str | None = None):
        super().__init__(family, task, render_mode)
        self.inner = family.make_gymnasium_env(render_mode)
        self.metadata["render_fps"] = self.inner.metadata.get("render_fps", 30)
        self.defaults = family.env_defaults(self.inner)
        self._elapsed = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.begin_reset(seed, options)
        self.family.apply_task(self.inner, self.task, self.defaults)
        obs, info = self.inner.reset(seed=seed)
        self._elapsed = 0
        return obs, info

    def step(self, action: Any):
        action = self.checked_action(action)
        obs, base_reward, terminated, truncated, info = self.inner.step(action)
        # Rewards are computed in float64 whatever the action's precision (a float32 control
        # cost differs from Gymnasium's own in the 8th digit).
        exact = action.astype(np.float64) if isinstance(action, np.ndarray) and action.dtype.kind == "f" else action
        reward = self.family.task_reward(self.task, exact, float(base_reward), info)
        info["reward_gymnasium"] = float(base_reward)
        self._elapsed += 1
        truncated = not terminated and (bool(truncated) or self._elapsed >= self.family.max_episode_steps)
        return obs, float(reward), bool(terminated), truncated, info

    def render(self) -> Any:
        return self.inner.render() if self.render_mode is not None else None

    def close(self) -> None:
        self.inner.close()


class GymnasiumFamily(Episodic, RLFamily[TaskT]):
    """A family whose tasks set parameters of the Gymnasium environment ``gym_id``.

    Subclasses (frozen dataclasses) set ``gym_id`` and ``task_type``, implement
    ``_sample_tasks`` and :meth:`apply_task`, and may override :meth:`task_reward`,
    :meth:`env_defaults` and :meth:`gym_kwargs`. ``horizon`` (steps per episode) and ``n``
    (episodes per trial) come from :class:`~metarl.rl.family.Episodic`.
    """

    gym_id: ClassVar[str]
    """The Gymnasium id of the environment, e.g. ``"CartPole-v1"``."""

    def gym_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``gymnasium.make(gym_id, ...)`` (the family's fields may set them)."""
        return {}

    def make_gymnasium_env(self, render_mode: str | None = None) -> Any:
        """A new, unwrapped instance of the environment."""
        return gym.make(self.gym_id, render_mode=render_mode, **self.gym_kwargs()).unwrapped

    def env_defaults(self, env: Any) -> Any:
        """What :meth:`apply_task` needs of a new environment's own values (e.g. copies of the
        masses a task scales), read once per environment; ``None`` by default."""
        return None

    def apply_task(self, env: Any, task: TaskT, defaults: Any) -> None:  # noqa: B027 (reward-only families)
        """Set ``env``'s parameters (the unwrapped environment) for ``task``; called before every
        reset. ``defaults`` is what :meth:`env_defaults` read from this environment."""

    def task_reward(self, task: TaskT, action: np.ndarray, reward: float, info: dict[str, Any]) -> float:
        """The task's reward for one step, from the action, the environment's own reward and its
        ``info``; the environment's reward by default."""
        return reward

    @property
    def observation_space(self) -> gym.Space:
        return _spaces(self)[0]

    @property
    def action_space(self) -> gym.Space:
        return _spaces(self)[1]

    def make_env(self, task: TaskT | None = None, render_mode: str | None = None) -> GymnasiumTaskEnv[TaskT]:
        return GymnasiumTaskEnv(self, task, render_mode=render_mode)

    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> TaskSyncVectorEnv[TaskT]:
        return TaskSyncVectorEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode)


@functools.cache
def _spaces(family: GymnasiumFamily[Any]) -> tuple[gym.Space, gym.Space]:
    """A family's spaces, read once from an instance of its environment."""
    env = family.make_gymnasium_env()
    spaces = (env.observation_space, env.action_space)
    env.close()
    return spaces
