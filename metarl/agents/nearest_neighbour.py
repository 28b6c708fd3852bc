"""Nearest neighbour on pixels: the non-learning baseline of few-shot classification.

Each query takes the label of the closest support example (1-NN over all shots, not over
class means) in raw pixel space. Lake et al. (2015) report it for the one-shot benchmark.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch

from metarl.fewshot.agent import ClassifierConfig, FewShotClassifier
from metarl.fewshot.losses import squared_distances


@dataclasses.dataclass(frozen=True)
class NearestNeighbourConfig(ClassifierConfig):
    """Pixel-space 1-nearest-neighbour classification."""

    metric: Literal["euclidean", "cosine"] = dataclasses.field(
        default="euclidean", metadata={"help": "distance between flattened images"})


class NearestNeighbour(FewShotClassifier):
    """1-NN on pixels: no training, evaluate only."""

    name: ClassVar[str] = "nearest_neighbour"
    config_class: ClassVar[type] = NearestNeighbourConfig
    learns: ClassVar[bool] = False
    config: NearestNeighbourConfig

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).float()
        return torch.nn.functional.normalize(z, dim=-1) if self.config.metric == "cosine" else z

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        nearest = squared_distances(query, support).argmin(-1)  # [B, Q] support positions
        return support_y.gather(1, nearest)

    def state_dict(self) -> dict[str, Any]:
        return {}
