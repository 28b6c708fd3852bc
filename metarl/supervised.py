"""Supervised few-shot families: tasks whose episodes are support and query sets.

A supervised family samples tasks (a set of classes, a sinusoid) like any family, and
builds an :class:`Episode` for a task: ``shots`` labelled support examples (per class for
classification) to adapt on, and ``queries`` query examples to score after adapting.
Regression and classification share the interface; ``problem`` says which.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch

from metarl.task import Task, TaskFamily


@dataclasses.dataclass
class Episode:
    """Support and query sets of one task, or of a batch of tasks (leading task dimension).

    Classification labels are remapped per episode to ``0 … ways-1``; ``support_x`` is
    ``[shots * ways, *input_shape]`` (``[tasks, shots * ways, ...]`` when batched).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def to(self, device: torch.device | str) -> Episode:
        """The episode with every tensor on ``device``."""
        return Episode(*(t.to(device) for t in dataclasses.astuple(self)))

    @staticmethod
    def stack(episodes: Sequence[Episode]) -> Episode:
        """Stack episodes of equal shapes into one batched episode."""
        return Episode(*(torch.stack(ts) for ts in zip(*(dataclasses.astuple(e) for e in episodes), strict=True)))


class SupervisedFamily(TaskFamily):
    """A family of few-shot supervised tasks."""

    kind: ClassVar[Literal["rl", "supervised"]] = "supervised"
    problem: ClassVar[Literal["classification", "regression"]]

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input ``x``."""

    @property
    @abc.abstractmethod
    def num_outputs(self) -> int:
        """Classes per episode (``ways``) for classification, output dimension for regression."""

    @abc.abstractmethod
    def sample_episode(self, task: Task, shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """Support and query sets of ``task``: ``shots`` and ``queries`` examples (per class
        for classification), drawn from ``rng``; support and query never share an example."""

    def sample_episodes(self, tasks: Sequence[Task], shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """A batched episode, one row per task (families may override with array code)."""
        return Episode.stack([self.sample_episode(t, shots, queries, rng) for t in tasks])
