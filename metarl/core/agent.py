"""The agent protocol the trainer and the evaluator drive, and evaluation results."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.core.distributed import all_reduce_grads, world
from metarl.core.errors import DivergenceError
from metarl.core.stats import mean_ci95
from metarl.core.task import Task, TaskFamily


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
        """The JSON report of ``python -m metarl.evaluate`` (keys listed in ARCHITECTURE.md)."""
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
    budget_fields: ClassVar[tuple[str, ...]] = ("iterations",)
    """The config fields that set how long training runs (``--resume`` may raise them)."""
    amp_refusal: ClassVar[str | None] = "its training has not been checked in bfloat16"
    """Why ``--amp`` (bfloat16 autocast in training) is not safe for this algorithm; ``None``
    where it is."""

    def __init__(self, config: Any, family: TaskFamily[Any], seed: int = 0, device: torch.device | str = "cpu"):
        if family.kind != self.kind and self.kind != "any":
            raise ValueError(f"--algo {self.name} works on {self.kind} families, but {type(family).__name__} is {family.kind}")
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

    def eval_task_count(self, requested: int) -> int:
        """How many of ``requested`` held-out tasks an evaluation takes (the trainer and
        ``metarl.evaluate`` evaluate the first this many): all of them, unless the agent's
        evaluation trains on each task (a policy learned from scratch) and caps them."""
        return requested

    @abc.abstractmethod
    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Adapt to each task and report the adaptation curve and score."""


class InnerLoopAgent(abc.ABC):
    """An agent that adapts by inner gradient steps (MAML, MAML-PG): evaluation reports the
    curve after 0, 1, ..., :meth:`test_steps` steps, and ``python -m metarl.evaluate
    --inner-steps N`` sets ``eval_inner_steps`` to override the config's number."""

    eval_inner_steps: int | None = None

    @abc.abstractmethod
    def default_test_steps(self) -> int:
        """Inner steps in evaluation when ``eval_inner_steps`` is not set."""

    def test_steps(self) -> int:
        """Inner steps in evaluation."""
        return self.default_test_steps() if self.eval_inner_steps is None else self.eval_inner_steps


def cosine_decay(progress: float) -> float:
    """A schedule's factor at ``progress`` (the fraction of the budget spent, clamped to [0, 1]):
    1 at the start, falling along half a cosine to 0 at the end of the budget."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float = 0.0,
                   lr: float | None = None) -> float:
    """One gradient step on ``loss``: zero the gradients, back-propagate, clip their global
    norm to ``max_grad_norm`` (0: no clipping), optionally set every group's learning rate
    to ``lr``, step. Returns the gradient norm before clipping.

    A non-finite loss or gradient raises :class:`~metarl.core.errors.DivergenceError` before
    the step, so the parameters stay as they were.

    Under data parallelism (torchrun) the gradients are averaged over the processes before
    clipping, so every process takes the same step; a non-finite loss on any process stops
    them all (each process decides from the same all-reduced flag, so none waits forever).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(loss.detach()).all())
    if world().size > 1:
        if finite:
            loss.backward()
        flag = all_reduce_grads(params, torch.tensor([0.0 if finite else 1.0], device=loss.device))
        if flag is not None and float(flag.sum()) > 0:
            raise DivergenceError(f"the loss is {float(loss.detach())}" if not finite else "the loss is not finite "
                                  "on another process")
    else:
        if not finite:
            raise DivergenceError(f"the loss is {float(loss.detach())}")
        loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else float("inf"))
    if not bool(torch.isfinite(norm)):
        raise DivergenceError(f"the gradient's norm is {float(norm)}")
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    return float(norm)
