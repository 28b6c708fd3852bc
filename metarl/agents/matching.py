"""Matching networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu and Wierstra 2016).

A query ``x`` is labelled by attention over the support set: ``P(y | x, S) = sum_i a(x, x_i)
y_i`` (eq. 1), with ``a`` a softmax over the cosine similarities of the embeddings
``c(f(x), g(x_i))`` (eq. 2). Meta-training maximises the log-probability of the query labels
over N-way K-shot episodes, as ProtoNets do; unlike ProtoNets, every support example is
kept and compared with (no class mean), and the distance is the cosine.

The embedding is the Conv-4 of the other metric learners. Cosines lie in ``[-1, 1]``, so a
softmax over them is nearly uniform: the cosines are multiplied by a learned scale
(initialised at ``--scale``; 1 and not learned with ``--fixed-scale``), a temperature the
paper's formulation leaves implicit.

``--fce`` adds the paper's *full context embeddings* (section 2.1.2, appendix A): the
support embeddings are read by a bidirectional LSTM, ``g(x_i, S) = g'(x_i) + h_fwd_i +
h_bwd_i``, and each query embedding is refined by ``--fce-steps`` steps of an LSTM that
attends over them: ``h_k = LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1}) + f'(x)``,
``r_k = sum_i softmax(h_k . g(x_i)) g(x_i)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from metarl.core.agent import IterationStats
from metarl.core.checks import check_positive
from metarl.core.seeding import torch_seeded
from metarl.fewshot.agent import EpisodicClassifier, EpisodicTrainingConfig
from metarl.fewshot.losses import cosine_similarities
from metarl.fewshot.models import Conv4, as_layout, fast_layout


@dataclasses.dataclass(frozen=True)
class MatchingConfig(EpisodicTrainingConfig):
    """Matching networks. Defaults as ProtoNets': 20-way 1-shot training episodes, 5 queries per class."""

    scale: float = dataclasses.field(default=10.0, metadata={"help": "initial scale of the cosines in the attention softmax"})
    fixed_scale: bool = dataclasses.field(default=False, metadata={"help": "keep the cosine scale at --scale (not learned)"})
    fce: bool = dataclasses.field(default=False, metadata={"help": "full context embeddings (bidirectional LSTM over the support, attention LSTM for queries)"})
    fce_steps: int = dataclasses.field(default=5, metadata={"help": "with --fce, the query's attention-LSTM steps"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("scale", "fce_steps"))


class FullContext(nn.Module):
    """Full context embeddings (Vinyals et al. 2016, appendix A)."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(dim, 2 * dim)  # its state is [h, r]; h is the first half

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context embeddings of support ``[B, S, D]`` and query ``[B, Q, D]`` features."""
        b, s, d = support.shape
        both, _ = self.support_lstm(support)
        g = support + both[..., :d] + both[..., d:]  # g(x_i, S) = g'(x_i) + h_fwd + h_bwd
        q = query.reshape(-1, d)
        gq = g.repeat_interleave(query.shape[1], 0)  # each query's support set: [B*Q, S, D]
        h, c = torch.zeros_like(q), torch.zeros(q.shape[0], 2 * d, dtype=q.dtype, device=q.device)
        r = torch.zeros_like(q)
        for _ in range(self.steps):
            h_hat, c = self.query_cell(q, (torch.cat([h, r], -1), c))
            h = h_hat[:, :d] + q
            attention = torch.softmax((gq @ h.unsqueeze(-1)).squeeze(-1), -1)  # over the support set
            r = (attention.unsqueeze(-1) * gq).sum(1)
        return g, h.view_as(query)


class MatchingNet(nn.Module):
    """Conv-4 embedding, optional full context embeddings, learned cosine scale."""

    def __init__(self, input_shape: tuple[int, ...], config: MatchingConfig):
        super().__init__()
        self.encoder = Conv4(input_shape[0], config.channels)
        dim = self.encoder.out_features(input_shape)
        self.context = FullContext(dim, config.fce_steps) if config.fce else None
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.scale)), requires_grad=not config.fixed_scale)

    def log_probs(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        """``log P(y = c | x, S)`` ``[B, Q, ways]`` of query features ``[B, Q, D]`` given support
        features ``[B, S, D]`` and labels ``[B, S]`` (eqs. 1-2)."""
        if self.context is not None:
            support, query = self.context(support, query)
        attention = torch.log_softmax(self.log_scale.exp() * cosine_similarities(query, support), -1)  # [B, Q, S]
        # eq. 1 in log space: log sum_{i in class c} a(x, x_i), with -inf for the other classes' examples
        mask = torch.log(F.one_hot(support_y, ways).to(attention.dtype))  # [B, S, ways]
        return (attention.unsqueeze(-1) + mask.unsqueeze(1)).logsumexp(-2)


class Matching(EpisodicClassifier):
    """Matching networks (``--algo matching``): cosine attention over the support set."""

    name: ClassVar[str] = "matching"
    config_class: ClassVar[type] = MatchingConfig
    config: MatchingConfig
    net: MatchingNet

    def __init__(self, config: MatchingConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        shape = tuple(self.family.input_shape)
        Conv4.check_input(shape)
        with torch_seeded(seed):
            self.net = fast_layout(MatchingNet(shape, config), self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.encoder(as_layout(x, self.device))

    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        return self.net.log_probs(support, support_y, query, ways).argmax(-1)

    def train_iteration(self) -> IterationStats:
        ep, zs, zq = self.training_episode()
        log_p = self.net.log_probs(zs, ep.support_y, zq, self.train_family.ways)
        qy = ep.query_y
        loss = F.nll_loss(log_p.flatten(0, 1), qy.flatten())
        self.step(loss)
        accuracy = float((log_p.argmax(-1) == qy).float().mean())
        scalars = {"train/loss": float(loss.detach()), "train/accuracy": accuracy, "train/lr": self.scheduled_lr(),
                   "train/cosine_scale": float(self.net.log_scale.detach().exp())}
        return IterationStats(0, scalars, self.training_curve(), headline={"loss": scalars["train/loss"], "acc": accuracy})
