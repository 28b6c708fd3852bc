"""Array RL families and the two environments every one of them gets for free.

An :class:`ArrayRLFamily` writes its dynamics once, as array code over a leading batch
dimension (``reset_state``, ``step_state``, ``observe``). :class:`ArrayTaskEnv` (one task, the
Gymnasium ``entry_point``) and :class:`BatchedTaskEnv` (one task per sub-env, the
``vector_entry_point``) both run that code, so they cannot drift apart; what differs
between them — autoreset bookkeeping, per-env tasks, seeding — is what the conformance
tests check against ``SyncVectorEnv``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Generic

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.core.task import TaskT
from metarl.rl.envs import TaskEnv
from metarl.rl.family import RLFamily
from metarl.rl.spaces import ActionCheck

State = dict[str, np.ndarray]
Params = dict[str, np.ndarray]
Index = slice | np.ndarray


class ArrayRLFamily(RLFamily[TaskT]):
    """An RL family whose dynamics are array code over a batch of tasks.

    Subclasses define the spaces and four array functions; all arrays have the batch
    dimension first. ``idx`` selects the sub-envs concerned (a slice or index array), so
    a batched env can step some sub-envs while it resets others.
    """

    @abc.abstractmethod
    def task_params(self, tasks: Sequence[TaskT]) -> Params:
        """Stack the tasks' parameters into arrays with a leading task dimension."""

    @abc.abstractmethod
    def new_state(self, num_envs: int) -> State:
        """Allocate the state arrays of ``num_envs`` environments (values unspecified)."""

    @abc.abstractmethod
    def reset_state(self, params: Params, state: State, idx: Index, rng: np.random.Generator) -> None:
        """Reset the sub-envs ``idx`` in place to the start of an episode."""

    @abc.abstractmethod
    def step_state(
        self, params: Params, state: State, actions: np.ndarray, idx: Index, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance sub-envs ``idx`` by ``actions`` (already indexed); return reward, terminated.

        The batched env steps all its sub-envs at once, including any whose episode has
        just ended and that it resets right after (NEXT_STEP autoreset): the results of
        those are discarded, so stepping past the end of an episode must be harmless.
        """

    @abc.abstractmethod
    def observe(self, params: Params, state: State, idx: Index) -> np.ndarray:
        """Observations of sub-envs ``idx``."""

    def render_rgb(self, params: Params, state: State) -> np.ndarray | None:
        """An RGB frame of the first sub-env, if the family can draw one."""
        return None

    def make_env(self, task: TaskT | None = None, render_mode: str | None = None) -> ArrayTaskEnv[TaskT]:
        return ArrayTaskEnv(self, task, render_mode=render_mode)

    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> BatchedTaskEnv[TaskT]:
        return BatchedTaskEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode)


_ALL = slice(None)
_NONE = np.zeros(0, dtype=np.int64)


class ArrayTaskEnv(TaskEnv[TaskT]):
    """One environment of an :class:`ArrayRLFamily`: its array code on a batch of one.

    ``reset(options={"task": task})`` switches the task; a reset without that option
    keeps the current one. ``env.task`` reads it.
    """

    family: ArrayRLFamily[TaskT]

    def __init__(self, family: ArrayRLFamily[TaskT], task: TaskT | None = None, render_mode: str | None = None):
        super().__init__(family, task, render_mode)
        self._state = family.new_state(1)
        self._elapsed = 0

    def set_task(self, task: TaskT) -> None:
        """Switch to ``task``; it takes effect from the next reset."""
        super().set_task(task)
        self._params = self.family.task_params([self.task])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.begin_reset(seed, options)
        self.family.reset_state(self._params, self._state, _ALL, self.np_random)
        self._elapsed = 0
        return self.family.observe(self._params, self._state, _ALL)[0], {}

    def step(self, action: Any):
        actions = self.checked_action(action)[None]
        reward, terminated = self.family.step_state(self._params, self._state, actions, _ALL, self.np_random)
        self._elapsed += 1
        term = bool(terminated[0])
        trunc = (not term) and self._elapsed >= self.family.max_episode_steps
        obs = self.family.observe(self._params, self._state, _ALL)[0]
        return obs, float(reward[0]), term, trunc, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self.family.render_rgb(self._params, self._state)
        return None


class BatchedTaskEnv(VectorEnv, Generic[TaskT]):
    """The native batched environment of an :class:`ArrayRLFamily`.

    Every sub-env has its own task (``set_tasks`` or ``reset(options={"tasks": ...})``)
    and all of them step with one call of the family's array code. Autoreset follows
    Gymnasium's modes: ``NEXT_STEP`` (the default, declared in ``metadata``), ``SAME_STEP``
    (the reset observation comes back at once, the last one in ``info["final_obs"]``,
    a batched array whose rows are valid where ``info["_final_obs"]``)
    and ``DISABLED`` (``reset(options={"reset_mask": mask})``).
    """

    def __init__(
        self,
        family: ArrayRLFamily[TaskT],
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.family = family
        self.num_envs = num_envs
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.metadata = {"autoreset_mode": self.autoreset_mode, "render_modes": []}
        self.single_observation_space = family.observation_space
        self.single_action_space = family.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._check_actions = ActionCheck(self.single_action_space, num_envs)
        self.set_tasks(tasks if tasks is not None else [family.default_task()] * num_envs)
        self._state = family.new_state(num_envs)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._np_random, self._np_random_seed = gym.utils.seeding.np_random(None)

    @property
    def tasks(self) -> list[TaskT]:
        """The sub-envs' tasks."""
        return list(self._tasks)

    def set_tasks(self, tasks: Sequence[TaskT]) -> None:
        """Give each sub-env its own task; takes effect from the next reset of each."""
        if len(tasks) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} tasks (one per sub-env), got {len(tasks)}")
        self._tasks = [self.family.validate_task(t) for t in tasks]
        self._params = self.family.task_params(self._tasks)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        options = dict(options or {})
        if "tasks" in options:
            self.set_tasks(options.pop("tasks"))
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            idx: Index = np.flatnonzero(mask)
        else:
            idx = _ALL
        self.family.reset_state(self._params, self._state, idx, self.np_random)
        self._elapsed[idx] = 0
        self._autoreset[idx] = False
        return self.family.observe(self._params, self._state, _ALL), {}

    def step(self, actions: Any):
        actions = self._check_actions(actions)
        n = self.num_envs
        if self.autoreset_mode == AutoresetMode.DISABLED and self._autoreset.any():
            raise RuntimeError(
                "step() after an episode ended with autoreset DISABLED: reset(options={'reset_mask': ...}) first"
            )
        resetting = np.flatnonzero(self._autoreset) if self.autoreset_mode == AutoresetMode.NEXT_STEP else _NONE
        if resetting.size == n:  # every sub-env starts a new episode (e.g. one-step episodes): nothing to step
            rewards, terminated = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=bool)
        else:
            # Every sub-env steps, as in Gymnasium's own CartPoleVectorEnv: gathering and
            # scattering the state of the active sub-envs alone cost 2-3x a whole step, and
            # the few sub-envs awaiting a NEXT_STEP reset are overwritten just below.
            reward, term = self.family.step_state(self._params, self._state, actions, _ALL, self.np_random)
            rewards = np.array(reward, dtype=np.float64)  # copies: the family may hand back its own arrays
            terminated = np.array(term, dtype=bool)
            self._elapsed += 1
        infos: dict[str, Any] = {}
        if resetting.size:
            idx: Index = _ALL if resetting.size == n else resetting
            self.family.reset_state(self._params, self._state, idx, self.np_random)
            self._elapsed[idx] = 0
            rewards[idx] = 0.0
            terminated[idx] = False
        truncated = ~terminated & (self._elapsed >= self.family.max_episode_steps)
        done = terminated | truncated
        obs = self.family.observe(self._params, self._state, _ALL)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            # Unlike SyncVectorEnv's per-env object array, ``final_obs`` is one batched
            # array (rows valid where ``_final_obs``): no Python loop over sub-envs.
            ended: Index = _ALL if done.all() else np.flatnonzero(done)
            infos = {"final_obs": obs.copy(), "_final_obs": done.copy()}
            self.family.reset_state(self._params, self._state, ended, self.np_random)
            self._elapsed[ended] = 0
            obs = self.family.observe(self._params, self._state, _ALL)
        self._autoreset = done
        return obs, rewards, terminated, truncated, infos
