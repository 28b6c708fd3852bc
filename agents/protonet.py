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

from metarl.agent import IterationStats, check_non_negative, check_positive
from metarl.episodes import FewShotClassifier, prototypes, squared_distances, training_family
from metarl.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class ProtoNetConfig:
    """Prototypical networks. Defaults: 20-way 1-shot training episodes with 5 queries per class
    (minutes on a CPU core); the paper's Omniglot setting is ``--train-ways 60``."""

    iterations: int = dataclasses.field(default=3000, metadata={"help": "training budget in meta-updates"})
    train_ways: int = dataclasses.field(default=20, metadata={"help": "classes per training episode (0: the family's ways)"})
    train_shots: int = dataclasses.field(default=0, metadata={"help": "support examples per class in training (0: the family's shots)"})
    train_queries: int = dataclasses.field(default=5, metadata={"help": "query examples per class in training"})
    meta_batch: int = dataclasses.field(default=1, metadata={"help": "episodes per meta-update"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    lr_halve_every: int = dataclasses.field(default=2000, metadata={"help": "halve the learning rate every N meta-updates (0: never)"})
    channels: int = dataclasses.field(default=64, metadata={"help": "filters per convolution"})
    augment: bool = dataclasses.field(
        default=False, metadata={"help": "distort each training image by a random affine map (±10°, ±10% scale and shift, shear)"})
    eval_shots: tuple[int, ...] = dataclasses.field(
        default=(1, 2, 5, 10), metadata={"help": "shot counts of the evaluation curve (those the data allow)"})
    curve_every: int = dataclasses.field(default=250, metadata={"help": "log a training-task adaptation curve every N meta-updates (0: never)"})
    curve_tasks: int = dataclasses.field(default=32, metadata={"help": "training tasks in that curve"})

    def __post_init__(self) -> None:
        check_positive(self, ("iterations", "train_queries", "meta_batch", "lr", "channels", "curve_tasks"))
        check_non_negative(self, ("train_ways", "train_shots", "lr_halve_every", "curve_every"))
        if not self.eval_shots or min(self.eval_shots) < 1:
            raise ValueError(f"--eval-shots must be positive shot counts, got {self.eval_shots}")


class ProtoNet(FewShotClassifier):
    """Prototypical networks with a Conv-4 embedding and squared Euclidean distance."""

    name: ClassVar[str] = "protonet"
    config_class: ClassVar[type] = ProtoNetConfig

    def __init__(self, config: ProtoNetConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        Conv4.check_input(tuple(family.input_shape))
        self.train_family = training_family(family, config.train_ways)
        self.train_shots = config.train_shots or family.shots
        with torch.random.fork_rng(devices=[]):  # initialise from the seed without touching global state
            torch.manual_seed(seed)
            self.net = fast_layout(Conv4(family.input_shape[0], config.channels), self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def set_training(self, mode: bool) -> None:
        self.net.train(mode)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(as_layout(x, self.device))

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        return squared_distances(query, prototypes(support, support_y, ways)).argmin(-1)

    def train_iteration(self) -> IterationStats:
        cfg = self.config
        self.check_data()
        tasks = self.train_family.sample_tasks(cfg.meta_batch, "train", self.task_rng)
        ep = self.train_family.sample_episodes(tasks, self.train_shots, cfg.train_queries, self.data_rng)
        b, s = ep.support_y.shape
        ways = self.train_family.num_outputs
        # Support and query go through the network together, so batch norm sees one batch per update.
        x = self.augmented(torch.cat([ep.support_x.flatten(0, 1), ep.query_x.flatten(0, 1)]))
        z = self.net(as_layout(x, self.device))
        zs, zq = z[: b * s].view(b, s, -1), z[b * s :].view(b, -1, z.shape[-1])
        logits = -squared_distances(zq, prototypes(zs, ep.support_y.to(self.device), ways))  # eq. 2
        qy = ep.query_y.to(self.device)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), qy.flatten())
        for group in self.optimizer.param_groups:
            group["lr"] = self.scheduled_lr()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iterations += 1
        accuracy = float((logits.argmax(-1) == qy).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/lr": self.scheduled_lr()}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), **self.stream_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        if "iterations" in state:
            self.load_stream_state(state)
