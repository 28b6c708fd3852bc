"""RL task families: the contract every RL family meets, and the fields episodic ones share.

An :class:`RLFamily` builds a single Gymnasium env for one task (``make_env``) and a
batched env with one task per sub-env (``make_vec_env``, a :class:`TaskVectorEnv`). Its
trials (RL²) are ``episodes_per_trial`` episodes of at most ``max_episode_steps`` steps.
:class:`Episodic` gives a family the two usual fields for those, ``horizon`` and ``n``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.core.task import TaskFamily, TaskT


class TaskVectorEnv(Protocol[TaskT]):
    """What every family's ``make_vec_env`` returns: a Gymnasium ``VectorEnv`` with one task
    per sub-env.

    ``set_tasks(tasks)`` or ``reset(options={"tasks": tasks})`` gives each sub-env its own
    task (taking effect at each sub-env's next reset); ``tasks`` reads them. Its results
    match ``SyncVectorEnv`` over the family's single env: exactly where the dynamics are
    deterministic given tasks and actions, in distribution where they are stochastic.
    """

    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space
    metadata: dict[str, Any]

    @property
    def tasks(self) -> list[TaskT]:
        """The sub-envs' tasks."""

    def set_tasks(self, tasks: Sequence[TaskT]) -> None:
        """Give each sub-env its own task."""

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every sub-env (``options``: ``tasks``, ``reset_mask``)."""

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every sub-env."""

    def close(self, **kwargs: Any) -> None:
        """Release the sub-envs."""


class RLFamily(TaskFamily[TaskT]):
    """A family of RL tasks: builds single and batched Gymnasium environments."""

    kind: ClassVar[Literal["rl", "supervised"]] = "rl"
    render_modes: ClassVar[tuple[str, ...]] = ()
    """Render modes the single env supports (``"rgb_array"`` if it can draw frames)."""
    stochastic: ClassVar[bool] = True
    """Whether outcomes are random given the task and the actions."""
    baselines: ClassVar[tuple[str, ...]] = ("random",)
    env_bytes: ClassVar[int] = 0
    """About how much memory one sub-env of a simulator family holds (0: negligible, as for
    array families). Agents refuse batches of envs that would not fit, and evaluation steps at
    most :meth:`eval_batch` sub-envs at once."""

    EVAL_ENV_MEMORY: ClassVar[int] = 2 * 2**30

    def eval_batch(self, limit: int = 4096) -> int:
        """How many sub-envs one evaluation batch may hold: ``limit``, or fewer so that their
        environments take at most 2 GiB. A property of the family, not of the machine, so that
        evaluation results do not depend on where they are computed."""
        return limit if not self.env_bytes else max(1, min(limit, self.EVAL_ENV_MEMORY // self.env_bytes))

    def env_memory_note(self, num_envs: int) -> tuple[float, str]:
        """Bytes and a description of ``num_envs`` sub-envs' environments, for memory checks."""
        if not self.env_bytes:
            return 0.0, ""
        return float(num_envs * self.env_bytes), f"; {num_envs} environments of about {self.env_bytes / 2**20:.0f} MiB"

    @property
    @abc.abstractmethod
    def episodes_per_trial(self) -> int:
        """Default number of episodes in one trial (RL²) of this family."""

    @property
    @abc.abstractmethod
    def max_episode_steps(self) -> int:
        """Upper bound on the length of one episode."""

    @property
    @abc.abstractmethod
    def observation_space(self) -> gym.Space:
        """Observation space of one environment."""

    @property
    @abc.abstractmethod
    def action_space(self) -> gym.Space:
        """Action space of one environment."""

    @abc.abstractmethod
    def make_env(self, task: TaskT | None = None, render_mode: str | None = None) -> gym.Env:
        """A single environment, set to ``task`` (or :meth:`default_task`)."""

    @abc.abstractmethod
    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[TaskT] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> TaskVectorEnv[TaskT]:
        """A batched environment with one task per sub-env."""

    def default_task(self) -> TaskT:
        """The task an environment starts with when none is given: the first train task
        of seed 0, so ``gymnasium.make(id)`` is deterministic."""
        return self.sample_tasks(1, "train")[0]

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[TaskT]:
        """Tasks whose outcomes are deterministic given the actions.

        The conformance suite checks that the batched env equals ``SyncVectorEnv``
        exactly on these. Deterministic families return ordinary train tasks; stochastic
        ones override this (e.g. arm probabilities of 0 and 1) or return ``[]``.
        """
        return [] if self.stochastic else self.sample_tasks(n, "train", rng)


def horizon_field(default: int, help: str = "steps per episode") -> Any:
    """The ``horizon`` field of an :class:`Episodic` family with its own default."""
    return dataclasses.field(default=default, metadata={"help": help})


def trial_field(default: int) -> Any:
    """The ``n`` field (episodes per trial) of an :class:`Episodic` family with its own default."""
    return dataclasses.field(default=default, metadata={"help": "episodes per trial"})


@dataclasses.dataclass(frozen=True)
class Episodic:
    """Mixin of RL families whose episodes last ``horizon`` steps, ``n`` to a trial.

    A family redeclares a field to change its default (``horizon: int = horizon_field(15)``);
    a subclass's ``__post_init__`` calls this one's.
    """

    horizon: int = horizon_field(200)
    n: int = trial_field(2)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.n < 1:
            raise ValueError(f"n (episodes per trial) must be >= 1, got {self.n}")

    @property
    def episodes_per_trial(self) -> int:
        """``n``."""
        return self.n

    @property
    def max_episode_steps(self) -> int:
        """``horizon``."""
        return self.horizon
