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

import torch
from torch import nn

from metarl.agent import IterationStats, check_non_negative, check_positive
from metarl.episodes import FewShotClassifier, labelled_batch
from metarl.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Pretraining on all training classes and per-episode head fitting."""

    iterations: int = dataclasses.field(default=3000, metadata={"help": "pretraining budget in minibatch updates"})
    batch_size: int = dataclasses.field(default=128, metadata={"help": "examples per pretraining minibatch"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate of pretraining"})
    lr_halve_every: int = dataclasses.field(default=2000, metadata={"help": "halve the learning rate every N updates (0: never)"})
    channels: int = dataclasses.field(default=64, metadata={"help": "filters per convolution"})
    augment: bool = dataclasses.field(
        default=False, metadata={"help": "distort each training image by a random affine map (±10°, ±10% scale and shift, shear)"})
    finetune_steps: int = dataclasses.field(default=100, metadata={"help": "Adam steps fitting the head on a support set"})
    finetune_lr: float = dataclasses.field(default=0.1, metadata={"help": "Adam learning rate of the head fit"})
    normalize: bool = dataclasses.field(default=True, metadata={"help": "L2-normalise features before the new head"})
    eval_shots: tuple[int, ...] = dataclasses.field(
        default=(1, 2, 5, 10), metadata={"help": "shot counts of the evaluation curve (those the data allow)"})
    curve_every: int = dataclasses.field(default=250, metadata={"help": "log a training-task adaptation curve every N updates (0: never)"})
    curve_tasks: int = dataclasses.field(default=32, metadata={"help": "training tasks in that curve"})

    def __post_init__(self) -> None:
        check_positive(self, ("iterations", "batch_size", "lr", "channels", "finetune_steps", "finetune_lr", "curve_tasks"))
        check_non_negative(self, ("lr_halve_every", "curve_every"))
        if not self.eval_shots or min(self.eval_shots) < 1:
            raise ValueError(f"--eval-shots must be positive shot counts, got {self.eval_shots}")


class Finetune(FewShotClassifier):
    """Pretrained Conv-4 features with a linear head fitted per episode."""

    name: ClassVar[str] = "finetune"
    config_class: ClassVar[type] = FinetuneConfig

    def __init__(self, config: FinetuneConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        Conv4.check_input(tuple(family.input_shape))
        if not hasattr(family, "class_dataset"):
            raise ValueError(f"finetune pretrains on all training classes, which {type(family).__name__} does not "
                             "expose (it needs a class_dataset(split) method)")
        self._classes: tuple[Any, Any, Any] | None = None  # loaded at the first update: evaluation needs none of it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = Conv4(family.input_shape[0], config.channels)
            self.feature_dim = backbone.out_features(tuple(family.input_shape))
            self.backbone = fast_layout(backbone, self.device)
        # The head over all training classes is built when training starts (or a checkpoint is
        # loaded), so that a trained run can be evaluated where no training data exists.
        self.head: nn.Linear | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def _build_head(self, num_classes: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1)
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
            family: Any = self.family  # class_dataset is checked for in __init__, not part of SupervisedFamily
            self._classes = family.class_dataset("train")
        if self.head is None:
            self._build_head(len(self._classes[1]))
        assert self.head is not None and self.optimizer is not None
        data, rows, turns = self._classes
        x, y = labelled_batch(data, rows, turns, self.config.batch_size, self.data_rng)
        y = y.to(self.device)
        logits = self.head(self.backbone(as_layout(self.augmented(x), self.device)))
        loss = nn.functional.cross_entropy(logits, y)
        for group in self.optimizer.param_groups:
            group["lr"] = self.scheduled_lr()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iterations += 1
        accuracy = float((logits.argmax(-1) == y).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/lr": self.scheduled_lr()}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})

    def state_dict(self) -> dict[str, Any]:
        state = {"backbone": self.backbone.state_dict(), **self.stream_state()}
        if self.head is not None and self.optimizer is not None:
            state.update(head=self.head.state_dict(), optimizer=self.optimizer.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.backbone.load_state_dict(state["backbone"])
        if "head" in state:
            self._build_head(int(state["head"]["weight"].shape[0]))
            assert self.head is not None and self.optimizer is not None
            self.head.load_state_dict(state["head"])
            if "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
        if "iterations" in state:
            self.load_stream_state(state)
