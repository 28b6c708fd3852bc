"""The agent protocol the trainer and the evaluator drive, and evaluation results."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.rollout import TrialPolicy, run_trials
from metarl.stats import mean_ci95
from metarl.task import Task, TaskFamily


@dataclasses.dataclass
class EvalResult:
    """Per-task results of an evaluation: an adaptation curve and a score.

    ``curve[i, j]`` is task ``i``'s performance at ``x[j]`` (episode index, inner step
    or shot count); ``scores[i]`` is task ``i``'s headline figure (``score_name``).
    """

    x_name: str
    x: list[int]
    curve_name: str
    curve: np.ndarray
    score_name: str
    scores: np.ndarray
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def report(self, family: str, algo: str, split: str) -> dict[str, Any]:
        """The JSON report of ``python -m metarl.evaluate`` (keys listed in DESIGN.md)."""
        means, cis = mean_ci95(self.curve)
        score_mean, score_ci = mean_ci95(self.scores)
        return {
            "family": family,
            "algo": algo,
            "split": split,
            "num_tasks": int(len(self.scores)),
            "x_name": self.x_name,
            "curve_name": self.curve_name,
            "curve": [{"x": int(x), "mean": float(m), "ci95": float(c)} for x, m, c in zip(self.x, means, cis, strict=True)],
            "score_name": self.score_name,
            "score": {"mean": float(score_mean), "ci95": float(score_ci)},
            **self.extra,
        }


def trial_eval_result(returns: np.ndarray) -> EvalResult:
    """An :class:`EvalResult` from per-task, per-episode returns of trials."""
    return EvalResult(
        x_name="episode",
        x=list(range(1, returns.shape[1] + 1)),
        curve_name="return",
        curve=returns,
        score_name="total_return_per_trial",
        scores=returns.sum(axis=1),
    )


@dataclasses.dataclass
class IterationStats:
    """What one training iteration reports to the trainer."""

    env_steps: int
    scalars: dict[str, float]
    curve: EvalResult | None = None  # the training rollouts' adaptation curve, if any
    headline: dict[str, float] = dataclasses.field(default_factory=dict)  # shown on the progress bar


class Agent(abc.ABC):
    """An algorithm: built from its frozen config and a family, trained and evaluated.

    Learning agents implement :meth:`train_iteration`, :meth:`progress`,
    :meth:`state_dict` and :meth:`load_state_dict`; non-learning baselines set
    ``learns = False`` and only evaluate.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    kind: ClassVar[str] = "rl"
    learns: ClassVar[bool] = True
    default_env: ClassVar[str] = "metarl/Bandit-v0"

    def __init__(self, config: Any, family: TaskFamily, seed: int = 0, device: torch.device | str = "cpu"):
        if family.kind != self.kind and self.kind != "any":
            raise ValueError(
                f"--algo {self.name} works on {self.kind} families, but {family.family_id or family} is {family.kind}"
            )
        self.config = config
        self.family = family
        self.seed = seed
        self.device = torch.device(device)

    def train_iteration(self) -> IterationStats:
        """One meta-training iteration (collect, adapt, meta-update)."""
        raise TypeError(f"{self.name} is a non-learning baseline: evaluate it, don't train it")

    def progress(self) -> float:
        """Fraction of the training budget spent, in [0, 1]."""
        return 1.0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training exactly (models, optimizers, RNG states)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (non-learners have no state)
        """Restore :meth:`state_dict` output."""

    @abc.abstractmethod
    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Adapt to each task and report the adaptation curve and score."""


class TrialAgent(Agent):
    """An RL agent evaluated by running one trial per task with a :class:`TrialPolicy`."""

    @abc.abstractmethod
    def trial_policy(self, seed: int) -> TrialPolicy:
        """The policy that acts (and adapts) during evaluation trials."""

    def episodes_per_trial(self) -> int:
        """Episodes per trial: the config's ``trial_episodes`` if set, else the family's."""
        k = getattr(self.config, "trial_episodes", None)
        return int(k) if k else self.family.episodes_per_trial  # type: ignore[attr-defined]

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        result = run_trials(self.trial_policy(seed), self.family, tasks, self.episodes_per_trial(), seed=seed)  # type: ignore[arg-type]
        return trial_eval_result(result.returns)


def check_positive(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is not > 0."""
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")


def check_non_negative(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is < 0."""
    for name in names:
        if getattr(config, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(config, name)}")
