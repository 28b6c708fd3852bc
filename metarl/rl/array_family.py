"""Array RL families and the environments every one of them gets for free.

An :class:`ArrayRLFamily` writes its dynamics once, as array code over a leading batch
dimension (``reset_state``, ``step_state``, ``observe``) against the array namespace of its
arrays (:mod:`metarl.rl.backend`), so the same code runs on NumPy arrays and on torch tensors.
:class:`ArrayTaskEnv` (one task, the Gymnasium ``entry_point``) and :class:`BatchedTaskEnv`
(one task per sub-env, the ``vector_entry_point``) both run that code on NumPy, so they cannot
drift apart; what differs between them — autoreset bookkeeping, per-env tasks, seeding — is
what the conformance tests check against ``SyncVectorEnv``. :class:`DeviceBatchedTaskEnv`
(``make_vec_env(..., device=...)``) runs it on tensors on a torch device, and the conformance
suite checks it against the NumPy env step for step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Generic

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.core.task import TaskT
from metarl.rl.backend import Array, Generator, generator, to_device
from metarl.rl.envs import TaskEnv
from metarl.rl.family import RLFamily, TaskVectorEnv
from metarl.rl.spaces import ActionCheck, TensorActionCheck

State = dict[str, Array]
Params = dict[str, Array]
Index = slice | Array


class ArrayRLFamily(RLFamily[TaskT]):
    """An RL family whose dynamics are array code over a batch of tasks.

    Subclasses define the spaces and four array functions; all arrays have the batch
    dimension first. ``idx`` selects the sub-envs concerned (a slice or index array), so
    a batched env can step some sub-envs while it resets others.

    ``task_params`` and ``new_state`` build NumPy arrays; the device env moves them to its
    device once. A family that sets :attr:`array_api` writes ``reset_state``, ``step_state``
    and ``observe`` for NumPy arrays and torch tensors alike (``xp =
    metarl.rl.backend.namespace(array)``, random draws through ``metarl.rl.backend``'s functions
    of ``rng``, a NumPy or torch generator).
    """

    array_api: ClassVar[bool] = False
    """Whether the array functions take torch tensors too (written against
    :mod:`metarl.rl.backend`), so that ``make_vec_env(device=...)`` runs them on a device.
    Off by default: a family written with ``np`` alone steps on NumPy only."""

    @abc.abstractmethod
    def task_params(self, tasks: Sequence[TaskT]) -> Params:
        """Stack the tasks' parameters into arrays with a leading task dimension."""

    @abc.abstractmethod
    def new_state(self, num_envs: int) -> State:
        """Allocate the state arrays of ``num_envs`` environments (values unspecified)."""

    @abc.abstractmethod
    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        """Reset the sub-envs ``idx`` in place to the start of an episode, writing every state array.

        (The device env resets by computing a fresh state for every sub-env and selecting it
        where a mask says, so a state array left unwritten here would be garbage there.)
        """

    @abc.abstractmethod
    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        """Advance sub-envs ``idx`` by ``actions`` (already indexed); return reward, terminated.

        The batched env steps all its sub-envs at once, including any whose episode has
        just ended and that it resets right after (NEXT_STEP autoreset): the results of
        those are discarded, so stepping past the end of an episode must be harmless.
        """

    @abc.abstractmethod
    def observe(self, params: Params, state: State, idx: Index) -> Array:
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
        device: str | torch.device | None = None,
    ) -> BatchedTaskEnv[TaskT]:
        """The batched env: NumPy arrays for ``device=None``, else torch tensors on ``device``
        (:class:`DeviceBatchedTaskEnv`)."""
        if device is None:
            return BatchedTaskEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode)
        if not self.array_api:
            raise ValueError(f"{type(self).__name__} steps on NumPy only: its array code is not declared to take "
                             "torch tensors (array_api = True, docs/families.md)")
        return DeviceBatchedTaskEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode, device=device)


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
        # Arrays here, tensors in DeviceBatchedTaskEnv.
        self._elapsed: Array = np.zeros(num_envs, dtype=np.int64)
        self._autoreset: Array = np.zeros(num_envs, dtype=bool)
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


class DeviceBatchedTaskEnv(BatchedTaskEnv[TaskT]):
    """:class:`BatchedTaskEnv` on torch tensors on ``device``: the same family code, task
    parameters and state held on the device, random draws from a ``torch.Generator`` there
    (seeded by ``reset(seed=...)``).

    Observations, rewards (float64), terminated and truncated come back as tensors on the
    device; actions may be tensors (on any device) or arrays. No step waits for the device:
    autoresets select a freshly reset state with a mask instead of indexing the sub-envs that
    ended (so ``SAME_STEP``'s ``info`` always holds ``final_obs`` and ``_final_obs``, the mask
    all False when no episode ended), and on an accelerator invalid actions are clamped and
    reported at the next ``reset`` (:class:`~metarl.rl.spaces.TensorActionCheck`). Only the
    ``DISABLED`` mode's check that no ended sub-env is stepped reads the device every step.
    """

    def __init__(
        self,
        family: ArrayRLFamily[TaskT],
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        device: str | torch.device = "cpu",
    ):
        self.device = torch.device(device)
        super().__init__(family, num_envs, tasks, autoreset_mode)
        self._device_check = TensorActionCheck(self.single_action_space, num_envs, self.device)
        self._state = {k: to_device(v, self.device) for k, v in self._state.items()}
        self._elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._autoreset = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._generator = generator(self.device, None)

    def set_tasks(self, tasks: Sequence[TaskT]) -> None:
        """Give each sub-env its own task (parameters copied to the device once)."""
        super().set_tasks(tasks)
        self._params = {k: to_device(v, self.device) for k, v in self._params.items()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._device_check.raise_pending()
        if seed is not None:
            self._generator = generator(self.device, seed)
        options = dict(options or {})
        if "tasks" in options:
            self.set_tasks(options.pop("tasks"))
        mask = options.pop("reset_mask", None)
        if mask is None:
            self.family.reset_state(self._params, self._state, _ALL, self._generator)
            self._elapsed.zero_()
            self._autoreset.zero_()
        else:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device)
            if tuple(mask.shape) != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {tuple(mask.shape)}")
            self._reset_where(mask)
            self._autoreset &= ~mask
        return self.family.observe(self._params, self._state, _ALL), {}

    def _reset_where(self, mask: torch.Tensor) -> None:
        """Reset the sub-envs where ``mask``: a fresh state for all, kept where the mask says."""
        fresh = {k: torch.empty_like(v) for k, v in self._state.items()}
        self.family.reset_state(self._params, fresh, _ALL, self._generator)
        for k, v in fresh.items():
            self._state[k] = torch.where(mask.view(-1, *([1] * (v.dim() - 1))), v, self._state[k])
        self._elapsed.masked_fill_(mask, 0)

    def step(self, actions: Any):
        actions = self._device_check(actions)
        if self.autoreset_mode == AutoresetMode.DISABLED and bool(self._autoreset.any()):
            raise RuntimeError(
                "step() after an episode ended with autoreset DISABLED: reset(options={'reset_mask': ...}) first"
            )
        # Every sub-env steps, as in the NumPy env; those awaiting a NEXT_STEP reset are
        # overwritten just below.
        reward, term = self.family.step_state(self._params, self._state, actions, _ALL, self._generator)
        rewards = reward.to(dtype=torch.float64, copy=True)  # copies: the family may hand back its own tensors
        terminated = term.to(dtype=torch.bool, copy=True)
        self._elapsed += 1
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            resetting = self._autoreset
            self._reset_where(resetting)
            rewards.masked_fill_(resetting, 0.0)
            terminated &= ~resetting
        truncated = ~terminated & (self._elapsed >= self.family.max_episode_steps)
        done = terminated | truncated
        obs = self.family.observe(self._params, self._state, _ALL)
        infos: dict[str, Any] = {}
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            infos = {"final_obs": obs, "_final_obs": done}
            self._reset_where(done)
            obs = self.family.observe(self._params, self._state, _ALL)
        self._autoreset = done
        return obs, rewards, terminated, truncated, infos


def make_vec_env(
    family: RLFamily[TaskT],
    num_envs: int,
    tasks: Sequence[TaskT] | None = None,
    autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    device: str | torch.device | None = None,
) -> TaskVectorEnv[TaskT]:
    """``family.make_vec_env``, on ``device`` when one is given (array families declaring
    ``array_api`` only; the others step on the host and raise ``ValueError`` for a device)."""
    if device is None:
        return family.make_vec_env(num_envs, tasks, autoreset_mode=autoreset_mode)
    if not isinstance(family, ArrayRLFamily):
        raise ValueError(f"{type(family).__name__} is not an array family: its envs step on the host, not on {device}")
    return family.make_vec_env(num_envs, tasks, autoreset_mode=autoreset_mode, device=device)


def runs_on_device(family: Any) -> bool:
    """Whether ``family``'s batched env can run on torch tensors (``make_vec_env(device=...)``)."""
    return isinstance(family, ArrayRLFamily) and family.array_api
