"""Prototypical networks (Snell, Swersky and Zemel 2017).

An embedding network maps every example to a vector; a class's prototype is the mean
embedding of its support examples (eq. 1), and a query is classified by a softmax over
negative squared Euclidean distances to the prototypes (eq. 2). Meta-training minimises
the cross-entropy of the query labels over episodes (Algorithm 1). Training episodes may
have more ways than test episodes (60-way training for 5- and 20-way tests in the paper,
section 3.1): harder episodes give a better embedding.

The embedding is the paper's Conv-4: four blocks of 3×3 convolution (64 filters), batch
normalisation, ReLU and 2×2 max-pooling, flattened (64 features for 28×28 inputs).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from metarl.core.agent import IterationStats
from metarl.core.seeding import torch_seeded
from metarl.fewshot.agent import EpisodicClassifier, EpisodicTrainingConfig
from metarl.fewshot.losses import prototypes, squared_distances
from metarl.fewshot.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class ProtoNetConfig(EpisodicTrainingConfig):
    """Prototypical networks. Defaults: 20-way 1-shot training episodes with 5 queries per class
    (minutes on a CPU core); the paper's Omniglot setting is ``--train-ways 60``."""


class ProtoNet(EpisodicClassifier):
    """Prototypical networks with a Conv-4 embedding and squared Euclidean distance."""

    name: ClassVar[str] = "protonet"
    config_class: ClassVar[type] = ProtoNetConfig
    config: ProtoNetConfig

    def __init__(self, config: ProtoNetConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        Conv4.check_input(tuple(self.family.input_shape))
        with torch_seeded(seed):
            self.net = fast_layout(Conv4(family.input_shape[0], config.channels), self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(as_layout(x, self.device))

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        return squared_distances(query, prototypes(support, support_y, ways)).argmin(-1)

    def train_iteration(self) -> IterationStats:
        ep, zs, zq = self.training_episode()
        logits = -squared_distances(zq, prototypes(zs, ep.support_y, self.train_family.ways))  # eq. 2
        qy = ep.query_y
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), qy.flatten())
        self.step(loss)
        accuracy = float((logits.argmax(-1) == qy).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/lr": self.scheduled_lr()}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})
