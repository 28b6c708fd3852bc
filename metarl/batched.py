"""RL families and the two environments every array family gets for free.

An :class:`ArrayRLFamily` writes its dynamics once, as array code over a leading batch
dimension (``reset_state``, ``step_state``, ``observe``). :class:`TaskEnv` (one task, the
Gymnasium ``entry_point``) and :class:`BatchedTaskEnv` (one task per sub-env, the
``vector_entry_point``) both run that code, so they cannot drift apart; what differs
between them — autoreset bookkeeping, per-env tasks, seeding — is what the conformance
tests check against ``SyncVectorEnv``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.task import Task, TaskFamily

State = dict[str, np.ndarray]
Params = dict[str, np.ndarray]
Index = slice | np.ndarray


class RLFamily(TaskFamily):
    """A family of RL tasks: builds single and batched Gymnasium environments."""

    kind: ClassVar[Literal["rl", "supervised"]] = "rl"
    render_modes: ClassVar[tuple[str, ...]] = ()
    """Render modes the single env supports (``"rgb_array"`` if it can draw frames)."""
    stochastic: ClassVar[bool] = True
    """Whether outcomes are random given the task and the actions."""

    @property
    @abc.abstractmethod
    def episodes_per_trial(self) -> int:
        """Default number of episodes in one trial (RL²) of this family."""

    @property
    @abc.abstractmethod
    def max_episode_steps(self) -> int:
        """Upper bound on the length of one episode."""

    @abc.abstractmethod
    def make_env(self, task: Task | None = None, render_mode: str | None = None) -> gym.Env:
        """A single environment, set to ``task`` (or :meth:`default_task`)."""

    @abc.abstractmethod
    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[Task] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> VectorEnv:
        """A batched environment with one task per sub-env."""

    def default_task(self) -> Task:
        """The task an environment starts with when none is given: the first train task
        of seed 0, so ``gymnasium.make(id)`` is deterministic."""
        return self.sample_tasks(1, "train")[0]

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Tasks whose outcomes are deterministic given the actions.

        The conformance suite checks that the batched env equals ``SyncVectorEnv``
        exactly on these. Deterministic families return ordinary train tasks; stochastic
        ones override this (e.g. arm probabilities of 0 and 1) or return ``[]``.
        """
        return [] if self.stochastic else self.sample_tasks(n, "train", rng)


class ArrayRLFamily(RLFamily):
    """An RL family whose dynamics are array code over a batch of tasks.

    Subclasses define the spaces and four array functions; all arrays have the batch
    dimension first. ``idx`` selects the sub-envs concerned (a slice or index array), so
    a batched env can step some sub-envs while it resets others.
    """

    @property
    @abc.abstractmethod
    def observation_space(self) -> gym.Space:
        """Observation space of one environment."""

    @property
    @abc.abstractmethod
    def action_space(self) -> gym.Space:
        """Action space of one environment."""

    @abc.abstractmethod
    def task_params(self, tasks: Sequence[Task]) -> Params:
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

    def make_env(self, task: Task | None = None, render_mode: str | None = None) -> TaskEnv:
        return TaskEnv(self, task, render_mode=render_mode)

    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[Task] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> BatchedTaskEnv:
        return BatchedTaskEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode)


_ALL = slice(None)
_NONE = np.zeros(0, dtype=np.int64)


class TaskEnv(gym.Env):
    """One environment of an :class:`ArrayRLFamily`, set to one task at a time.

    ``reset(options={"task": task})`` switches the task; a reset without that option
    keeps the current one. ``env.task`` reads it.
    """

    def __init__(self, family: ArrayRLFamily, task: Task | None = None, render_mode: str | None = None):
        self.family = family
        self.observation_space = family.observation_space
        self.action_space = family.action_space
        self.metadata = {"render_modes": list(family.render_modes), "render_fps": 10}
        if render_mode is not None and render_mode not in family.render_modes:
            raise ValueError(f"render_mode must be one of {[None, *family.render_modes]}, got {render_mode!r}")
        self.render_mode = render_mode
        self.set_task(task if task is not None else family.default_task())
        self._state = family.new_state(1)
        self._elapsed = 0

    @property
    def task(self) -> Task:
        """The current task."""
        return self._task

    def set_task(self, task: Task) -> None:
        """Switch to ``task``; it takes effect from the next reset."""
        self._task = self.family.validate_task(task)
        self._params = self.family.task_params([task])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        self.family.reset_state(self._params, self._state, _ALL, self.np_random)
        self._elapsed = 0
        return self.family.observe(self._params, self._state, _ALL)[0], {}

    def step(self, action: Any):
        actions = np.asarray(action)[None]
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


class BatchedTaskEnv(VectorEnv):
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
        family: ArrayRLFamily,
        num_envs: int,
        tasks: Sequence[Task] | None = None,
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
        self.set_tasks(tasks if tasks is not None else [family.default_task()] * num_envs)
        self._state = family.new_state(num_envs)
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._np_random, self._np_random_seed = gym.utils.seeding.np_random(None)

    @property
    def tasks(self) -> list[Task]:
        """The sub-envs' tasks."""
        return list(self._tasks)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
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
        actions = np.asarray(actions)
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
