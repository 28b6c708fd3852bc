"""Black-box few-shot learners that read an episode as a sequence (the LSTM learner, SNAIL).

Such a learner reads the support set as a sequence of ``(x_t, y_t)`` pairs and predicts a
query's label from what it has read: nothing is adapted by gradient steps at test time.
Everything but the sequence model is shared here:

- :func:`reading_order`: the support set in rounds (one example of each class per round, in a
  random order), so that after ``k * ways`` steps the learner has seen ``k`` shots of every
  class;
- :class:`SequenceModel`: the model's contract, ``forward(episode, ways, rounds)`` -> query
  outputs after each prefix of ``k`` rounds in ``rounds`` (``[tasks, len(rounds), queries, outputs]``),
  and the shared input encoder (:func:`metarl.fewshot.models.input_encoder`: Conv-4 with
  ordinary batch norm for images, an MLP otherwise);
- :class:`SequenceLearner`: training on the query loss after ``k`` = 1, 2, 5, 10, ... and all
  ``shots`` rounds (:func:`training_rounds`: every query scored after every prefix would cost
  ``shots + 1`` query passes, 11 for 10-shot regression), evaluation (the curve over every
  ``k = 0 .. shots``), ``classify`` and checkpoints.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from metarl.core.agent import EvalResult, IterationStats, cosine_decay
from metarl.core.checks import check_non_negative, check_positive
from metarl.core.seeding import torch_generator, torch_seeded
from metarl.core.task import Task
from metarl.fewshot.agent import FewShotAgent, FewShotLearnerConfig
from metarl.fewshot.data import random_affine
from metarl.fewshot.episode import Episode, episode_ways, within_class_rank
from metarl.fewshot.evaluation import one_two_five
from metarl.fewshot.family import SupervisedFamily
from metarl.fewshot.losses import metric_name, task_loss, task_metric
from metarl.fewshot.models import fast_layout, input_encoder


@dataclasses.dataclass(frozen=True)
class SequenceLearnerConfig(FewShotLearnerConfig):
    """Settings shared by the black-box sequence learners."""

    encoder_hidden: tuple[int, ...] = dataclasses.field(default=(40, 40), metadata={"help": "MLP encoder of vector inputs (regression)"})
    filters: int = dataclasses.field(default=64, metadata={"help": "filters per Conv-4 layer of the image encoder"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    lr_decay: bool = dataclasses.field(default=False, metadata={"help": "decay the learning rate to 0 (cosine) over --iterations"})
    max_grad_norm: float = dataclasses.field(default=5.0, metadata={"help": "gradient clipping norm (0: none)"})
    augment: bool = dataclasses.field(
        default=False, metadata={"help": "images: distort each training image by a random affine map (±10°, ±10% scale and shift, shear)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("filters", "lr"))
        check_non_negative(self, ("max_grad_norm",))
        if not self.encoder_hidden or min(self.encoder_hidden) <= 0:
            raise ValueError(f"--encoder-hidden needs at least one positive layer size, got {self.encoder_hidden}")


def reading_order(episode: Episode, ways: int, generator: torch.Generator, classification: bool) -> Episode:
    """The support set in rounds: one example of each class per round, in a random order."""
    if not classification:
        return episode  # regression points are i.i.d. already
    y = episode.support_y
    rank = within_class_rank(y, ways)
    noise = torch.rand(y.shape, generator=generator, device=generator.device).to(y.device)
    order = (rank.float() + noise).argsort(dim=1)
    take = lambda t: t.gather(1, order.view(*order.shape, *([1] * (t.dim() - 2))).expand_as(t))  # noqa: E731
    return Episode(take(episode.support_x), take(episode.support_y), episode.query_x, episode.query_y)


class SequenceModel(nn.Module):
    """A black-box learner's network: the input encoder and the label input; subclasses add
    the sequence model in :meth:`forward`."""

    def __init__(self, family: SupervisedFamily[Any], config: SequenceLearnerConfig):
        super().__init__()
        self.classification = family.problem == "classification"
        self.outputs = family.num_outputs
        self.encoder, self.feat = input_encoder(family, config.encoder_hidden, config.filters)

    def label_input(self, y: torch.Tensor) -> torch.Tensor:
        """What the learner reads of a label: one-hot classes, or the regression target."""
        return F.one_hot(y, self.outputs).float() if self.classification else y

    def encode(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of the support ``[tasks, S, feat]`` and query ``[tasks, Q, feat]`` inputs, in
        one batch (batch norm sees the whole meta-batch)."""
        b, s = episode.support_x.shape[:2]
        q = episode.query_x.shape[1]
        x = torch.cat([episode.support_x.flatten(0, 1), episode.query_x.flatten(0, 1)])
        feats = self.encoder(x)
        return feats[: b * s].view(b, s, -1), feats[b * s:].view(b, q, -1)

    def forward(self, episode: Episode, ways: int, rounds: Sequence[int]) -> torch.Tensor:
        """Query outputs after each prefix of ``k`` rounds in ``rounds`` (``0 <= k <= shots``):
        ``[tasks, len(rounds), queries, outputs]`` (classification: the first ``ways`` logits).
        The support set is in reading order."""
        # Abstract: the LSTM learner and SNAIL define it (nn.Module is not an ABC, so
        # abc.abstractmethod would not be enforced here).
        raise NotImplementedError


def training_rounds(shots: int) -> list[int]:
    """The prefixes trained on: ``k`` = 1, 2, 5, 10, 20, 50, ... up to ``shots``, and ``shots``."""
    return one_two_five(shots)


class SequenceLearner(FewShotAgent):
    """Base of the black-box learners: a :class:`SequenceModel` (:meth:`build_model`) trained by
    Adam on the query loss after the :func:`training_rounds` of the support set."""

    config: SequenceLearnerConfig
    net: SequenceModel
    amp_refusal: ClassVar[str | None] = (
        "the recurrent state (LSTM) and the attention logits over the whole sequence accumulate bfloat16's "
        "rounding; not measured safe")

    def __init__(self, config: SequenceLearnerConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        if config.augment and len(self.family.input_shape) != 3:
            raise ValueError(f"--augment distorts images; {type(self.family).__name__} has inputs shaped "
                             f"{tuple(self.family.input_shape)}")
        with torch_seeded(seed):
            self.net = fast_layout(self.build_model(self.family, config), self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.generator = torch_generator(seed)  # reading orders
        self.augment_rng = torch_generator(seed + 1)
        self.streams.add(torch_rng=self.generator, augment_rng=self.augment_rng)

    @abc.abstractmethod
    def build_model(self, family: SupervisedFamily[Any], config: Any) -> SequenceModel:
        """The learner's network for ``family``."""

    def scheduled_lr(self) -> float:
        """``config.lr``, decayed by a cosine over the iterations with ``--lr-decay``."""
        cfg = self.config
        if not cfg.lr_decay:
            return cfg.lr
        return cfg.lr * cosine_decay(self.iterations / cfg.iterations)

    def _run(self, episode: Episode, generator: torch.Generator, training: bool = False) -> tuple[torch.Tensor, list[int]]:
        """Query outputs ``[tasks, len(rounds), queries, ...]`` and the rounds they follow:
        every ``k = 0 .. shots`` (evaluation), or :func:`training_rounds`."""
        classification = self.problem == "classification"
        ways = episode_ways(episode) if classification else 1
        shots = episode.support_x.shape[1] // ways
        rounds = training_rounds(shots) if training else list(range(shots + 1))
        return self.net(reading_order(episode, ways, generator, classification), ways, rounds), rounds

    def _curve(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and metric ``[tasks, K+1]`` of predictions ``[tasks, K+1, queries, ...]``."""
        y = y[:, None].expand(-1, out.shape[1], *y.shape[1:])
        return task_loss(self.problem, out, y), task_metric(self.problem, out.detach(), y)

    def _augmented(self, episode: Episode) -> Episode:
        if not self.config.augment:
            return episode
        s, q = episode.support_x, episode.query_x
        x = random_affine(torch.cat([s.flatten(0, 1), q.flatten(0, 1)]), self.augment_rng)
        n = s.shape[0] * s.shape[1]
        return Episode(x[:n].view_as(s), episode.support_y, x[n:].view_as(q), episode.query_y)

    def train_iteration(self) -> IterationStats:
        cfg = self.config
        self.net.train()
        episode = self._augmented(self.train_episodes())
        out, rounds = self._run(episode, self.generator, training=True)
        losses, metrics = self._curve(out, episode.query_y)
        loss = losses.mean()
        norm = self.update(loss, cfg.max_grad_norm, lr=self.scheduled_lr())
        m = metrics.cpu().numpy().astype(np.float64)
        name = metric_name(self.problem)
        scalars = {"train/loss": float(loss.detach()), "train/final_loss": float(losses[:, -1].detach().mean()),
                   f"train/{name}": float(m[:, -1].mean()), "train/grad_norm": float(norm),
                   "train/lr": self.scheduled_lr()}
        curve = EvalResult("shots", rounds, name, m, f"{name}_shots_{rounds[-1]}", m[:, -1])
        headline = {"mse" if self.problem == "regression" else "acc": float(m[:, -1].mean())}
        return IterationStats(0, scalars, self.pooled_curve(curve), headline)

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Query metric after ``k = 0 .. shots`` shots; the score is after all of them."""
        generator = torch_generator(seed)
        curves = []
        self.net.eval()
        try:
            with torch.no_grad():
                for episode in self.eval_episodes(tasks, seed):
                    curves.append(self._curve(self._run(episode, generator)[0], episode.query_y)[1].cpu().numpy())
        finally:
            self.net.train()
        curve = np.concatenate(curves).astype(np.float64)
        name, k = metric_name(self.problem), curve.shape[1] - 1
        return EvalResult("shots", list(range(k + 1)), name, curve, f"{name}_shots_{k}", curve[:, -1])

    def classify(self, episode: Episode) -> torch.Tensor:
        """Predicted query labels after reading the whole support set."""
        batch, single = self.as_batch(episode)
        self.net.eval()
        try:
            with torch.no_grad():
                out = self._run(batch, torch_generator(0))[0]
        finally:
            self.net.train()
        labels = out[:, -1].argmax(-1)
        return labels[0] if single else labels

    def checkpointed(self) -> dict[str, Any]:
        return {"net": self.net, "optimizer": self.optimizer}

