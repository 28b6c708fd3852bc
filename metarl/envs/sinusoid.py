"""Few-shot sinusoid regression (Finn et al. 2017, MAML, section 5.1)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from metarl.core.task import Task
from metarl.fewshot.data import regression_episode
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import SupervisedFamily


@dataclasses.dataclass(frozen=True)
class SinusoidTask(Task):
    """One sine wave ``y = amplitude * sin(x - phase)``."""

    amplitude: float
    phase: float


def _check_range(name: str, r: tuple[float, float]) -> None:
    if len(r) != 2 or not all(math.isfinite(v) for v in r) or not r[0] < r[1]:
        raise ValueError(f"{name} must be two finite numbers LOW HIGH with LOW < HIGH, got {r}")


@dataclasses.dataclass(frozen=True)
class SinusoidFamily(SupervisedFamily[SinusoidTask]):
    """K-shot regression of sine waves: each task is one wave, seen through K points.

    ## Description
    A task is ``y = A sin(x - phi)``. An episode gives ``shots`` support points ``(x, y)``
    to adapt on and ``queries`` query points to score on (mean squared error); all points
    are independent draws of ``x``, so support and query never share an example.

    ## Inputs and outputs
    ``x``: shape ``(1,)``, ``x ~ U[input_range]`` (default ``U[-5, 5]``); ``y``: shape
    ``(1,)`` (``num_outputs = 1``). Tensors are ``float32``.

    ## Arguments
    ``amplitude_range`` (default ``0.1 5.0``), ``phase_range`` (default ``0 pi``),
    ``input_range`` (default ``-5 5``): the MAML paper's setup. ``shots`` (K, default 10) and
    ``queries`` (default 10): the points per episode of the test protocol, which agents
    also train with unless told otherwise (``--train-shots``).

    ## Task distribution
    ``A ~ U[amplitude_range]``, ``phi ~ U[phase_range]``.

    ## Splits
    - ``train``, ``test``: the task distribution above; test tasks come from a disjoint
      seed stream (:func:`metarl.task_rng`).
    - ``ood``: amplitudes and phases outside the training ranges: with ``[a, b]`` the
      amplitude range and ``[p, q]`` the phase range, ``A ~ U[b, 2b]`` and
      ``phi ~ U[q, 2q - p]``, i.e. ``A ~ U[5, 10]`` and ``phi ~ U[pi, 2 pi]`` by default:
      larger waves, and (because ``sin(x - phi) = -sin(x - phi + pi)``) sign-flipped shapes
      that no training task has. Inputs keep the training range.
    """

    amplitude_range: tuple[float, float] = dataclasses.field(
        default=(0.1, 5.0), metadata={"help": "training amplitudes are drawn uniformly from LOW HIGH"}
    )
    phase_range: tuple[float, float] = dataclasses.field(
        default=(0.0, math.pi), metadata={"help": "training phases are drawn uniformly from LOW HIGH (radians)"}
    )
    input_range: tuple[float, float] = dataclasses.field(
        default=(-5.0, 5.0), metadata={"help": "inputs x are drawn uniformly from LOW HIGH"}
    )
    shots: int = dataclasses.field(default=10, metadata={"help": "support points per task (K-shot) of the test protocol"})
    queries: int = dataclasses.field(default=10, metadata={"help": "query points per task of the test protocol"})

    problem: ClassVar[Literal["classification", "regression"]] = "regression"
    task_type = SinusoidTask

    def __post_init__(self) -> None:
        _check_range("amplitude_range", self.amplitude_range)
        _check_range("phase_range", self.phase_range)
        _check_range("input_range", self.input_range)
        if self.shots < 1 or self.queries < 1:
            raise ValueError(f"shots and queries must be >= 1, got {self.shots} and {self.queries}")
        if self.amplitude_range[0] < 0:
            raise ValueError(f"amplitude_range must be non-negative (the phase carries the sign), got {self.amplitude_range}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,)

    @property
    def num_outputs(self) -> int:
        return 1

    shifts: ClassVar[dict[str, str]] = {
        "amplitude": "set the amplitude to v (training: amplitude_range)",
        "phase": "set the phase to v radians (training: phase_range)"}
    ood_shift: ClassVar[str] = "amplitude:b..2b and phase:q..2q-p beyond the training ranges [a, b] and [p, q]"

    def _apply_shift(self, task: SinusoidTask, name: str, value: float | None,
                     rng: np.random.Generator) -> SinusoidTask:
        assert value is not None
        if name == "amplitude":
            return dataclasses.replace(task, amplitude=value)
        return dataclasses.replace(task, phase=value)

    def split_ranges(self, split: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """The (amplitude, phase) ranges that ``split``'s tasks are drawn from."""
        if split == "ood":
            b, (p, q) = self.amplitude_range[1], self.phase_range
            return (b, 2 * b), (q, 2 * q - p)
        return self.amplitude_range, self.phase_range

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[SinusoidTask]:
        amp_range, phase_range = self.split_ranges(split)
        amplitudes = rng.uniform(*amp_range, size=n)
        phases = rng.uniform(*phase_range, size=n)
        return [SinusoidTask(float(a), float(p)) for a, p in zip(amplitudes, phases, strict=True)]

    def check_task(self, task: SinusoidTask) -> None:
        if not (math.isfinite(task.amplitude) and math.isfinite(task.phase)):
            raise ValueError(f"amplitude and phase must be finite, got {task}")

    def _sample_episodes(self, tasks: Sequence[SinusoidTask], shots: int, queries: int,
                        rng: np.random.Generator) -> Episode:
        """A batched episode ``[tasks, points, 1]`` drawn with array code (no loop over tasks);
        the support points come first in the draw."""
        if shots < 1 or queries < 0:
            raise ValueError(f"need shots >= 1 and queries >= 0, got {shots} and {queries}")
        checked = [self.validate_task(t) for t in tasks]
        amp = np.array([t.amplitude for t in checked], dtype=np.float64)[:, None]
        phase = np.array([t.phase for t in checked], dtype=np.float64)[:, None]
        x = rng.uniform(*self.input_range, size=(len(tasks), shots + queries, 1))
        return regression_episode(x, amp[..., None] * np.sin(x - phase[..., None]), shots)
