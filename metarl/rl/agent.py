"""RL agents evaluated by trials: the base of RL² and of the non-learning baselines."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from metarl.core.agent import Agent, EvalResult
from metarl.core.seeding import ENV_KEY, RANK_KEY, Streams, stream, task_rng, torch_generator
from metarl.core.task import Task
from metarl.rl.array_family import runs_on_device
from metarl.rl.family import RLFamily
from metarl.rl.rollout import TrialPolicy, run_trials


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """The setting every trial agent shares: how many episodes make a trial."""

    trial_episodes: int = dataclasses.field(default=0, metadata={"help": "episodes per trial (0: the family's default)"})

    def __post_init__(self) -> None:
        if self.trial_episodes < 0:
            raise ValueError(f"--trial-episodes must be >= 0 (0: the family's default), got {self.trial_episodes}")


EnvDevice = Literal["auto", "numpy", "agent"]


def env_device_field() -> Any:
    """The ``env_device`` config field of agents whose policies act on tensors (RL², MAML-PG)."""
    return dataclasses.field(default="auto", metadata={
        "help": "where array families' envs step: numpy (on the host), agent (torch tensors on the agent's "
                "device: no host round trip per step), auto (agent on an accelerator, numpy on the CPU)"})


def resolve_env_device(choice: EnvDevice, device: torch.device, family: RLFamily[Any]) -> torch.device | None:
    """The device an agent's batched envs step on (``None``: NumPy on the host).

    ``auto`` keeps NumPy on the CPU, where it is faster than torch (experiments/RESULTS.md,
    "Families on torch tensors"), and for families that only step on the host.
    """
    if choice == "numpy" or (choice == "auto" and (device.type == "cpu" or not runs_on_device(family))):
        return None
    if not runs_on_device(family):
        raise ValueError(f"--env-device agent needs an array family that runs on torch tensors (array_api); "
                         f"{type(family).__name__} steps on the host only")
    return device


class TrainingStreams(Streams):
    """The random streams of a learning RL agent, saved in its checkpoints: training tasks
    (``task_rng``), environment resets (``env_rng``) and actions and minibatches
    (``generator``, a torch generator on the agent's device); ``rank``: the data-parallel
    process (rank 0's streams are a single process's)."""

    def __init__(self, seed: int, device: torch.device | str, rank: int = 0):
        # Every data-parallel process draws the whole meta-batch's tasks from the same stream
        # and takes its share, so the tasks do not depend on the number of processes; the
        # environment and action streams are the process's own.
        self.task_rng = task_rng(seed, "train")
        self.env_rng = stream(seed, ENV_KEY) if rank == 0 else stream(seed, ENV_KEY, RANK_KEY, rank)
        self.generator = torch_generator(seed if rank == 0 else int(stream(seed, RANK_KEY, rank).integers(2**62)),
                                         device)
        super().__init__(task_rng=self.task_rng, env_rng=self.env_rng, torch_rng=self.generator)


def trial_eval_result(returns: np.ndarray) -> EvalResult:
    """An :class:`EvalResult` from per-task, per-episode returns of trials: the curve is the
    return of each episode, the score the total return per trial."""
    return EvalResult(
        x_name="episode",
        x=list(range(1, returns.shape[1] + 1)),
        curve_name="return",
        curve=returns,
        score_name="total_return_per_trial",
        scores=returns.sum(axis=1),
    )


class TrialAgent(Agent):
    """An RL agent evaluated by running one trial per task with a :class:`TrialPolicy`."""

    config: TrialConfig
    family: RLFamily[Any]
    env_device: torch.device | None = None
    """Where evaluation envs step (``None``: NumPy); see :func:`resolve_env_device`."""

    def __init__(self, config: TrialConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        if not isinstance(family, RLFamily):
            raise TypeError(f"{self.name} needs an RL family, got {type(family).__name__}")

    @abc.abstractmethod
    def trial_policy(self, seed: int) -> TrialPolicy:
        """The policy that acts (and adapts) during evaluation trials."""

    def episodes_per_trial(self) -> int:
        """Episodes per trial: the config's ``trial_episodes`` if set, else the family's."""
        return self.config.trial_episodes or self.family.episodes_per_trial

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        trials = run_trials(self.trial_policy(seed), self.family, tasks, self.episodes_per_trial(), seed=seed,
                            device=self.env_device)
        return trial_eval_result(trials.returns)
