"""Supervised few-shot families: tasks whose episodes are support and query sets.

A supervised family samples tasks (a set of classes, a sinusoid) like any family, and
builds an :class:`Episode` for a task: ``shots`` labelled support examples (per class for
classification) to adapt on, and ``queries`` query examples to score after adapting.
Regression and classification share the interface; ``problem`` says which.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch

from metarl.core.shift import Shift
from metarl.core.task import TaskFamily, TaskT
from metarl.fewshot.data import ClassDataset
from metarl.fewshot.episode import Episode
from metarl.fewshot.image_shifts import IMAGE_SHIFTS, apply_image_shifts, check_image_shift


class SupervisedFamily(TaskFamily[TaskT]):
    """A family of few-shot supervised tasks.

    ``shots`` and ``queries`` (per class for classification) are the family's test
    protocol: evaluation episodes have that many support and query examples, and agents
    train with them unless told otherwise.
    """

    kind: ClassVar[Literal["rl", "supervised"]] = "supervised"
    problem: ClassVar[Literal["classification", "regression"]]
    shots: int
    queries: int

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input ``x``."""

    @property
    @abc.abstractmethod
    def num_outputs(self) -> int:
        """Classes per episode (``ways``) for classification, output dimension for regression."""

    input_shifts: ClassVar[frozenset[str]] = frozenset()
    """The shifts of :attr:`shifts` that transform inputs when an episode is drawn (image shifts);
    the others change the task's values when it is sampled."""

    def sample_episodes(self, tasks: Sequence[TaskT], shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """A batched episode, one row per task: ``shots`` and ``queries`` examples (per
        class for classification) drawn from ``rng``; support and query never share an
        example. The inputs of a task with input shifts (``rotate:30.0``) are transformed,
        with any noise drawn from ``rng`` after the examples."""
        episode = self._sample_episodes(tasks, shots, queries, rng)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, task in enumerate(tasks):
            texts = tuple(t for t in task.shift if Shift.parse(t).name in self.input_shifts)
            if texts:
                groups.setdefault(texts, []).append(i)
        for texts, rows in groups.items():
            index = torch.tensor(rows)
            episode.support_x[index] = apply_image_shifts(episode.support_x[index], texts, rng)
            episode.query_x[index] = apply_image_shifts(episode.query_x[index], texts, rng)
        return episode

    @abc.abstractmethod
    def _sample_episodes(self, tasks: Sequence[TaskT], shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """:meth:`sample_episodes` before input shifts."""

    def sample_episode(self, task: TaskT, shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """The episode of one task (unbatched tensors); the same draws as a batch of one."""
        return self.sample_episodes([task], shots, queries, rng).unbatched()


class ClassificationFamily(SupervisedFamily[TaskT]):
    """N-way K-shot classification: a task is ``ways`` classes, labelled ``0 … ways-1`` in a
    random order in each episode."""

    problem: ClassVar[Literal["classification", "regression"]] = "classification"
    baselines: ClassVar[tuple[str, ...]] = ("nearest_neighbour",)
    ways: int

    def _apply_shift(self, task: TaskT, name: str, value: float | None, rng: np.random.Generator) -> TaskT:
        if name in IMAGE_SHIFTS:
            check_image_shift(Shift(name, value, value))
        return task

    @property
    def num_outputs(self) -> int:
        return self.ways

    @abc.abstractmethod
    def examples_available(self, tasks: Sequence[TaskT]) -> int:
        """The fewest examples any class of ``tasks`` has (an episode draws at most that many)."""

    @abc.abstractmethod
    def class_dataset(self, split: str = "train") -> tuple[ClassDataset, np.ndarray, np.ndarray]:
        """All classes of ``split`` for ordinary (non-episodic) classification, as the
        fine-tuning baseline pretrains on: the dataset and, per global class id, its dataset
        row and quarter turns (rotated classes are separate ids)."""
