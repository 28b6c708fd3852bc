"""Fine-tuning baseline: pretrain a classifier on all training classes, then fit a new head
on each episode's support set.

Pretraining is ordinary supervised learning: a Conv-4 backbone and a linear head over every
training class (each rotated copy its own class when the family augments by rotations),
minibatches of labelled examples, cross-entropy. At test time the backbone is frozen and a
fresh linear head (zero-initialised) is trained on the support features of the episode for
a few Adam steps, then classifies the queries. This is the "pretrained ConvNet" baseline of
few-shot learning (e.g. Lake et al. 2019's ConvNet, Chen et al. 2019's Baseline); the
episodes of every task in an evaluation batch are fitted at once with batched matrix products.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from metarl.core.agent import IterationStats
from metarl.core.checks import check_positive
from metarl.core.distributed import shard
from metarl.core.seeding import torch_seeded
from metarl.fewshot.agent import TrainedClassifier, TrainedClassifierConfig
from metarl.fewshot.data import ClassDataset, labelled_batch
from metarl.fewshot.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(TrainedClassifierConfig):
    """Pretraining on all training classes and per-episode head fitting."""

    batch_size: int = dataclasses.field(default=128, metadata={"help": "examples per pretraining minibatch"})
    finetune_steps: int = dataclasses.field(default=100, metadata={"help": "Adam steps fitting the head on a support set"})
    finetune_lr: float = dataclasses.field(default=0.1, metadata={"help": "Adam learning rate of the head fit"})
    normalize: bool = dataclasses.field(default=True, metadata={"help": "L2-normalise features before the new head"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("batch_size", "finetune_steps", "finetune_lr"))


class Finetune(TrainedClassifier):
    """Pretrained Conv-4 features with a linear head fitted per episode."""

    name: ClassVar[str] = "finetune"
    config_class: ClassVar[type] = FinetuneConfig
    config: FinetuneConfig

    def __init__(self, config: FinetuneConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        shape = tuple(self.family.input_shape)
        Conv4.check_input(shape)
        # Loaded at the first update: evaluation needs none of it.
        self._classes: tuple[ClassDataset, np.ndarray, np.ndarray] | None = None
        with torch_seeded(seed):
            backbone = Conv4(shape[0], config.channels)
            self.feature_dim = backbone.out_features(shape)
            self.backbone = fast_layout(backbone, self.device)
        # The head over all training classes is built when training starts (or a checkpoint is
        # loaded), so that a trained run can be evaluated where no training data exists.
        self.head: nn.Linear | None = None

    def _build_head(self, num_classes: int) -> None:
        with torch_seeded(self.seed + 1):
            self.head = nn.Linear(self.feature_dim, num_classes).to(self.device)
        self.optimizer = torch.optim.Adam([*self.backbone.parameters(), *self.head.parameters()], lr=self.config.lr)

    def set_training(self, mode: bool) -> None:
        self.backbone.train(mode)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        z = self.backbone(as_layout(x, self.device))
        return nn.functional.normalize(z, dim=-1) if self.config.normalize else z

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        b, _, d = support.shape
        weight = torch.zeros(b, d, ways, device=support.device, requires_grad=True)
        bias = torch.zeros(b, 1, ways, device=support.device, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=self.config.finetune_lr)
        with torch.enable_grad():
            for _ in range(self.config.finetune_steps):
                logits = support @ weight + bias  # [B, S, N]: one independent head per episode
                loss = nn.functional.cross_entropy(logits.flatten(0, 1), support_y.flatten(), reduction="sum") / b
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return (query @ weight.detach() + bias.detach()).argmax(-1)

    def train_iteration(self) -> IterationStats:
        if self._classes is None:
            self.check_data()
            self._classes = self.family.class_dataset("train")
        if self.head is None:
            self._build_head(len(self._classes[1]))
        assert self.head is not None
        data, rows, turns = self._classes
        # Under torchrun each process draws its share of the minibatch from its own stream.
        x, y = labelled_batch(data, rows, turns, shard(self.config.batch_size, "--batch-size"), self.data_rng)
        y = y.to(self.device)
        logits = self.head(self.backbone(as_layout(self.augmented(x), self.device)))
        loss = nn.functional.cross_entropy(logits, y)
        self.step(loss)
        accuracy = float((logits.argmax(-1) == y).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/lr": self.scheduled_lr()}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})

    def checkpointed(self) -> dict[str, Any]:
        head = {"head": self.head, "optimizer": self.optimizer} if self.head is not None else {}
        return {"backbone": self.backbone, **head}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "head" in state and self.head is None:
            self._build_head(int(state["head"]["weight"].shape[0]))
        super().load_state_dict(state)
