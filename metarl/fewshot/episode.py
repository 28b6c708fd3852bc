"""The episode: support and query sets of one task or of a batch of tasks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch.nn import functional as F


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

    def unbatched(self) -> Episode:
        """The first (only) episode of a batch of one."""
        return Episode(*(t[0] for t in dataclasses.astuple(self)))

    def batched(self) -> Episode:
        """A single episode as a batch of one."""
        return Episode(*(t.unsqueeze(0) for t in dataclasses.astuple(self)))


def episode_ways(episode: Episode) -> int:
    """Classes in a classification episode (labels are remapped to 0 .. ways-1)."""
    return int(episode.support_y.max()) + 1


def within_class_rank(y: torch.Tensor, ways: int) -> torch.Tensor:
    """Index of each example among the examples of its class in ``y`` ``[tasks, n]`` (0 for the first)."""
    return F.one_hot(y, ways).cumsum(1).gather(-1, y.unsqueeze(-1)).squeeze(-1) - 1
