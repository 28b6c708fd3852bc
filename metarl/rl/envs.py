"""The environments of RL families: one task per env, or one task per sub-env.

:class:`TaskEnv` is the base of every family's single env: it holds the current task,
switches it on ``reset(options={"task": task})`` (a plain reset keeps it) and checks the
render mode. :class:`TaskSyncVectorEnv` batches any family's single env with Gymnasium's
``SyncVectorEnv``, one task per sub-env; families whose dynamics are array code get a
native batched env instead (:mod:`metarl.rl.array_family`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Generic

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from metarl.core.task import TaskT
from metarl.rl.family import RLFamily
from metarl.rl.spaces import ActionCheck


class TaskEnv(gym.Env, Generic[TaskT]):
    """A single environment of ``family``, set to one task at a time.

    ``reset(options={"task": task})`` switches the task; a reset without that option keeps
    the current one; :attr:`task` reads it. Subclasses call :meth:`begin_reset` at the start
    of their ``reset``.
    """

    def __init__(self, family: RLFamily[TaskT], task: TaskT | None = None, render_mode: str | None = None,
                 render_fps: int = 10):
        if render_mode is not None and render_mode not in family.render_modes:
            raise ValueError(f"render_mode must be one of {[None, *family.render_modes]}, got {render_mode!r}")
        self.family = family
        self.render_mode = render_mode
        self.metadata = {"render_modes": list(family.render_modes), "render_fps": render_fps}
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self._check_action = ActionCheck(self.action_space)
        self.set_task(task if task is not None else family.default_task())

    @property
    def task(self) -> TaskT:
        """The current task."""
        return self._task

    def set_task(self, task: TaskT) -> None:
        """Switch to ``task``; when it takes effect is the subclass's to say (the next reset,
        or for a reward, the next step)."""
        self._task = self.family.validate_task(task)

    def checked_action(self, action: Any) -> np.ndarray:
        """``action`` as an array if it belongs to the action space, else a clear ``ValueError``."""
        return self._check_action(action)

    def begin_reset(self, seed: int | None, options: dict[str, Any] | None) -> None:
        """Seed :attr:`np_random` and switch to ``options["task"]`` if given."""
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])


class TaskSyncVectorEnv(SyncVectorEnv, Generic[TaskT]):
    """A ``SyncVectorEnv`` over a family's single env, with one task per sub-env.

    ``set_tasks(tasks)`` or ``reset(options={"tasks": tasks})`` gives each sub-env its own
    task (see the single env for when it takes effect); ``tasks`` reads them. Autoreset,
    seeding (sub-env ``i`` gets ``seed + i``) and ``reset_mask`` are ``SyncVectorEnv``'s, so
    this env matches ``SyncVectorEnv`` over the single env by construction. For families
    that step in C (MuJoCo), where the Python loop over sub-envs costs little next to the
    physics (``experiments/bench_mujoco.py`` measures it).
    """

    def __init__(
        self,
        family: RLFamily[TaskT],
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        tasks = list(tasks) if tasks is not None else [family.default_task()] * num_envs
        self._check_count(num_envs, tasks)
        self.family = family
        super().__init__(
            [functools.partial(family.make_env, t) for t in tasks], autoreset_mode=AutoresetMode(autoreset_mode)
        )
        self._check_actions = ActionCheck(self.single_action_space, num_envs)
        self.task_envs: list[TaskEnv[TaskT]] = []
        for env in self.envs:
            if not isinstance(env, TaskEnv):
                raise TypeError(f"{type(family).__name__}.make_env must return a TaskEnv, got {type(env).__name__}")
            self.task_envs.append(env)

    @staticmethod
    def _check_count(num_envs: int, tasks: Sequence[Any]) -> None:
        if len(tasks) != num_envs:
            raise ValueError(f"expected {num_envs} tasks (one per sub-env), got {len(tasks)}")

    @property
    def tasks(self) -> list[TaskT]:
        """The sub-envs' tasks."""
        return [env.task for env in self.task_envs]

    def set_tasks(self, tasks: Sequence[TaskT]) -> None:
        """Give each sub-env its own task."""
        tasks = list(tasks)
        self._check_count(self.num_envs, tasks)
        validated = [self.family.validate_task(t) for t in tasks]  # all or nothing
        for env, task in zip(self.task_envs, validated, strict=True):
            env.set_task(task)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if "tasks" in options:
            self.set_tasks(options.pop("tasks"))
        return super().reset(seed=seed, options=options or None)

    def step(self, actions: Any):
        return super().step(self._check_actions(actions))
