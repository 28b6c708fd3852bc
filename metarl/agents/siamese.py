"""Siamese networks for one-shot image recognition (Koch, Zemel and Salakhutdinov 2015).

Twin encoders with shared weights map two images to feature vectors ``h1, h2`` (Conv-4,
then a sigmoid-activated linear layer, as Koch et al. end theirs); the probability that
the two show the same class is ``sigmoid(sum_j alpha_j |h1_j - h2_j| + b)``, a learned
weighted L1 distance (section 3.1). Training minimises the binary cross-entropy of
same/different pairs: every query of a training episode against every support example,
positives weighted up to balance the ``ways - 1`` negatives each has. A query is
classified by the most similar support image (section 4.2): nothing adapts at test time
beyond the comparison. Classification families only; evaluation is the shared shots curve
of :class:`metarl.fewshot.agent.FewShotClassifier`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from metarl.core.agent import IterationStats
from metarl.core.checks import check_non_negative, check_positive
from metarl.core.seeding import torch_seeded
from metarl.fewshot.agent import EpisodicClassifier, EpisodicTrainingConfig
from metarl.fewshot.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class SiameseConfig(EpisodicTrainingConfig):
    """Siamese network trained on same/different pairs drawn from N-way K-shot training episodes."""

    train_queries: int = dataclasses.field(default=2, metadata={"help": "query examples per class in training"})
    embedding: int = dataclasses.field(default=128, metadata={"help": "feature size compared by the weighted L1 distance"})
    weight_decay: float = dataclasses.field(default=0.0, metadata={"help": "L2 penalty (Koch et al. regularise each layer)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("embedding",))
        check_non_negative(self, ("weight_decay",))
        if self.train_ways == 1:
            raise ValueError("--train-ways 1 gives no different-class pairs; use 0 (the family's) or >= 2")


class SiameseNet(nn.Module):
    """Twin Conv-4 encoder and the weighted-L1 similarity of Koch et al. (section 3.1)."""

    def __init__(self, input_shape: tuple[int, ...], channels: int, embedding: int):
        super().__init__()
        body = Conv4(input_shape[0], channels)
        self.encoder = nn.Sequential(body, nn.Linear(body.out_features(input_shape), embedding), nn.Sigmoid())
        self.alpha = nn.Linear(embedding, 1)  # the weights alpha_j and the bias of the L1 distance

    def similarity(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """Same-class logits ``[B, Q, S]`` of query features ``[B, Q, D]`` against support ``[B, S, D]``."""
        return self.alpha((query[:, :, None] - support[:, None]).abs()).squeeze(-1)


class Siamese(EpisodicClassifier):
    """Siamese network (``--algo siamese``): the label of the most similar support image."""

    name: ClassVar[str] = "siamese"
    config_class: ClassVar[type] = SiameseConfig
    config: SiameseConfig
    net: SiameseNet

    def __init__(self, config: SiameseConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        shape = tuple(self.family.input_shape)
        Conv4.check_input(shape)
        with torch_seeded(seed):
            self.net = fast_layout(SiameseNet(shape, config.channels, config.embedding), self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encoder(as_layout(x, self.device))

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        nearest = self.net.similarity(query, support).argmax(-1)  # the most similar support image (section 4.2)
        return support_y.gather(1, nearest)

    def train_iteration(self) -> IterationStats:
        ep, hs, hq = self.training_episode()  # the twin encoder's features of support and query
        logits = self.net.similarity(hq, hs)
        sy, qy = ep.support_y, ep.query_y
        same = (qy[:, :, None] == sy[:, None]).float()
        pos_weight = (same.numel() - same.sum()) / same.sum().clamp_min(1)  # as many positives as negatives, in weight
        loss = F.binary_cross_entropy_with_logits(logits, same, pos_weight=pos_weight)
        self.step(loss)
        with torch.no_grad():
            accuracy = float((sy.gather(1, logits.argmax(-1)) == qy).float().mean())
            pair_accuracy = float(((logits > 0).float() == same).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/pair_accuracy": pair_accuracy,
                   "train/lr": self.scheduled_lr()}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})
