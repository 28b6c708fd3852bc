"""A black-box recurrent meta-learner: an LSTM that learns in its hidden state.

Model-based meta-learning in the manner of Hochreiter et al. 2001 and Santoro et al.
2016: the learner reads an episode's support set as a sequence of pairs ``(x_t, y_{t-1})``
(the label of the previous example arrives with the next input) and predicts ``y_t``.
After ``n`` support examples its state is queried: each query ``x_q`` is fed as one more
step, with ``y_{n-1}`` as its previous label, from the state after the ``n`` examples.
Queries are read in parallel from that state (their labels are unknown, so none is fed
back, and no query sees another). Beside the previous label the cell also reads the
completed pair as ``y_{t-1} (x) enc(x_{t-1})``, the outer product of label and features
(class-conditional evidence; ``y * phi(x)`` for regression), which it can sum in its
state: with the label alone, binding it to the previous input is what plain LSTMs take
~10^5 episodes to learn (Santoro et al. 2016's LSTM baseline), and ours had not started
after 3,000. The input encoder is the family's (Conv-4 for images, an MLP otherwise); an
MLP head reads the LSTM output with the query's encoding.

The support set is read in rounds, one example per class per round in a random order,
so after ``k * ways`` steps the learner has seen ``k`` shots of every class. Training
minimises the query loss after every ``k = 0 .. shots``; the adaptation curve has
``x`` = shots per class seen (for regression, support points seen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import vmap
from torch.nn import functional as F

from metarl.core.agent import EvalResult, IterationStats
from metarl.core.checks import check_non_negative, check_positive
from metarl.core.seeding import torch_generator, torch_seeded
from metarl.core.task import Task
from metarl.fewshot.agent import FewShotAgent, FewShotLearnerConfig
from metarl.fewshot.episode import Episode, episode_ways, within_class_rank
from metarl.fewshot.family import SupervisedFamily
from metarl.fewshot.losses import metric_name, task_loss, task_metric
from metarl.fewshot.models import encoder


@dataclasses.dataclass(frozen=True)
class LSTMConfig(FewShotLearnerConfig):
    """The LSTM meta-learner. Defaults suit K-shot sinusoid regression on CPU; the shots come
    from the family's ``--shots`` (and ``--queries``)."""

    hidden_size: int = dataclasses.field(default=128, metadata={"help": "LSTM state size"})
    encoder_hidden: tuple[int, ...] = dataclasses.field(default=(40, 40), metadata={"help": "MLP encoder of vector inputs (regression)"})
    filters: int = dataclasses.field(default=64, metadata={"help": "filters per Conv-4 layer of the image encoder"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    max_grad_norm: float = dataclasses.field(default=5.0, metadata={"help": "gradient clipping norm (0: none)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("hidden_size", "filters", "lr"))
        check_non_negative(self, ("max_grad_norm",))
        if not self.encoder_hidden or min(self.encoder_hidden) <= 0:
            raise ValueError(f"--encoder-hidden needs at least one positive layer size, got {self.encoder_hidden}")


class RecurrentLearner(nn.Module):
    """Encoder, LSTM cell over ``(enc(x_t), y_{t-1}, y_{t-1} (x) enc(x_{t-1}), has_label)`` and a head."""

    def __init__(self, family: SupervisedFamily[Any], config: LSTMConfig):
        super().__init__()
        self.classification = family.problem == "classification"
        self.outputs = family.num_outputs
        self.encoder, feat = encoder(family, config.encoder_hidden, config.filters)
        self.feat = feat
        self.cell = nn.LSTMCell(feat + self.outputs * (feat + 1) + 1, config.hidden_size)
        self.head = nn.Sequential(nn.Linear(config.hidden_size + feat, config.hidden_size), nn.ReLU(),
                                  nn.Linear(config.hidden_size, self.outputs))

    def label_input(self, y: torch.Tensor) -> torch.Tensor:
        """What the LSTM reads of a label: one-hot classes, or the regression target."""
        return F.one_hot(y, self.outputs).float() if self.classification else y

    def forward(self, episode: Episode, ways: int) -> torch.Tensor:
        """Query predictions after ``k = 0 .. shots`` shots: ``[tasks, shots + 1, queries, outputs]``.

        The support set must already be in reading order (rounds of ``ways`` examples).
        """
        n_support, n_query = episode.support_x.shape[1], episode.query_x.shape[1]
        feats = vmap(self.encoder)(torch.cat([episode.support_x, episode.query_x], 1))  # per-task batch norm
        fs, fq = feats[:, :n_support], feats[:, n_support:]
        labels = self.label_input(episode.support_y)
        # The pair completed at step t, (x_{t-1}, y_{t-1}), as label, label (x) features and
        # a has-label flag (see the module docstring for why the outer product).
        pairs = torch.cat([labels, (labels[..., :, None] * fs[..., None, :]).flatten(-2), torch.ones_like(labels[..., :1])], -1)
        tasks = fs.shape[0]
        h = fs.new_zeros(tasks, self.cell.hidden_size)
        c = torch.zeros_like(h)
        prev = pairs.new_zeros(tasks, pairs.shape[-1])  # nothing labelled yet
        states = [(h, c, prev)]
        for t in range(n_support):
            h, c = self.cell(torch.cat([fs[:, t], prev], -1), (h, c))
            prev = pairs[:, t]
            if (t + 1) % ways == 0:
                states.append((h, c, prev))
        # Every query from every state, in one batched step: [tasks, K+1, queries, ...].
        hs, cs, prevs = (torch.stack(s, 1) for s in zip(*states, strict=True))
        k1 = hs.shape[1]
        q = fq[:, None].expand(-1, k1, -1, -1)
        inp = torch.cat([q, prevs[:, :, None].expand(-1, -1, n_query, -1)], -1)
        size = hs.shape[-1]
        hq, _ = self.cell(inp.reshape(-1, inp.shape[-1]),
                          (hs[:, :, None].expand(-1, -1, n_query, -1).reshape(-1, size),
                           cs[:, :, None].expand(-1, -1, n_query, -1).reshape(-1, size)))
        out = self.head(torch.cat([hq.view(tasks, k1, n_query, size), q], -1))
        return out[..., :ways] if self.classification else out


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


class LSTMLearner(FewShotAgent):
    """The LSTM meta-learner (``--algo lstm``)."""

    name: ClassVar[str] = "lstm"
    config_class: ClassVar[type] = LSTMConfig
    config: LSTMConfig

    def __init__(self, config: LSTMConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        with torch_seeded(seed):
            self.net = RecurrentLearner(self.family, config).to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.generator = torch_generator(seed)  # reading orders
        self.streams.add(torch_rng=self.generator)

    def _run(self, episode: Episode, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        ways = episode_ways(episode) if self.problem == "classification" else 1
        episode = reading_order(episode, ways, generator, self.problem == "classification")
        return self.net(episode, ways), ways

    def _curve(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and metric ``[tasks, K+1]`` of predictions ``[tasks, K+1, queries, ...]``."""
        y = y[:, None].expand(-1, out.shape[1], *y.shape[1:])
        return task_loss(self.problem, out, y), task_metric(self.problem, out.detach(), y)

    def train_iteration(self) -> IterationStats:
        cfg = self.config
        self.net.train()
        episode = self.train_episodes()
        out, _ = self._run(episode, self.generator)
        losses, metrics = self._curve(out, episode.query_y)
        loss = losses.mean()  # every shot count: the learner must improve with each example
        norm = self.update(loss, cfg.max_grad_norm)
        m = metrics.cpu().numpy().astype(np.float64)
        name = metric_name(self.problem)
        scalars = {"train/loss": float(loss.detach()), "train/final_loss": float(losses[:, -1].detach().mean()),
                   f"train/{name}": float(m[:, -1].mean()), "train/grad_norm": float(norm)}
        k = m.shape[1] - 1
        curve = EvalResult("shots", list(range(k + 1)), name, m, f"{name}_shots_{k}", m[:, -1])
        headline = {"mse" if self.problem == "regression" else "acc": float(m[:, -1].mean())}
        return IterationStats(0, scalars, self.pooled_curve(curve), headline)

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Query metric after ``k = 0 .. shots`` shots; the score is after all of them."""
        generator = torch_generator(seed)
        curves = []
        with torch.no_grad():
            for episode in self.eval_episodes(tasks, seed):
                out, _ = self._run(episode, generator)
                curves.append(self._curve(out, episode.query_y)[1].cpu().numpy())
        curve = np.concatenate(curves).astype(np.float64)
        name, k = metric_name(self.problem), curve.shape[1] - 1
        return EvalResult("shots", list(range(k + 1)), name, curve, f"{name}_shots_{k}", curve[:, -1])

    def classify(self, episode: Episode) -> torch.Tensor:
        """Predicted query labels after reading the whole support set."""
        batch, single = self.as_batch(episode)
        with torch.no_grad():
            out, _ = self._run(batch, torch_generator(0))
        labels = out[:, -1].argmax(-1)
        return labels[0] if single else labels

    def checkpointed(self) -> dict[str, Any]:
        return {"net": self.net, "optimizer": self.optimizer}
