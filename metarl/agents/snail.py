"""SNAIL: a simple neural attentive meta-learner (Mishra, Rohaninejad, Chen and Abbeel 2018).

A black-box learner like the LSTM learner (:mod:`metarl.agents.lstm_learner`), but its
sequence model interleaves *temporal convolutions* (causal, dilated, gated "dense blocks"
whose outputs are concatenated to their inputs; section 3.1, Figure 2) with *causal soft
attention* (scaled dot-product attention of each position over the positions before it).
The attention gives it pinpoint access to any earlier example — a query can look up the
support example it resembles and read its label — which a recurrent state must instead
learn to keep; the paper reports 99.1% on Omniglot 5-way 1-shot.

The sequence is the support set in rounds (one example per class per round, in a random
order), each element ``[enc(x_t), y_t, 1]`` with the label one-hot (the target for
regression) and a has-label flag, then a query ``[enc(x_q), 0, 0]``. Architecture as the
paper's for Omniglot (section 4.1 and appendix B), with a width ``w`` (128 there):
attention (keys ``w/2``, values ``w/4``), TC block (``w`` filters), attention (``2w``,
``w``), TC block, attention (``4w``, ``2w``), then a linear layer to the outputs. A TC
block has ``ceil(log2 T)`` dense blocks of dilations 1, 2, 4, ... for sequences of length
``T`` (the training support set plus a query).

Queries are scored in parallel: every query sits at the position after the support prefix
it is asked after (``k * ways`` examples, for each ``k`` scored), reads the support
positions before it (the convolutions' taps and the attention) and itself, never another
query. Since the support positions see only earlier support positions, their activations
are computed once for all queries and prefixes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from metarl.core.checks import check_positive
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import SupervisedFamily
from metarl.fewshot.sequence import SequenceLearner, SequenceLearnerConfig, SequenceModel


@dataclasses.dataclass(frozen=True)
class SNAILConfig(SequenceLearnerConfig):
    """SNAIL. Defaults suit K-shot sinusoid regression on CPU; the shots come from the family's
    ``--shots`` (and ``--queries``)."""

    iterations: int = dataclasses.field(default=3_000, metadata={"help": "meta-iterations (outer updates) to train"})
    width: int = dataclasses.field(
        default=32, metadata={"help": "filters per TC dense block; attention sizes scale with it (the paper: 128)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("width",))
        if self.width % 4:
            raise ValueError(f"--width must be a multiple of 4 (attention values are width / 4), got {self.width}")


def causal_taps(support: torch.Tensor, query: torch.Tensor, prefix: torch.Tensor, dilation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What a causal convolution of kernel 2 and ``dilation`` reads ``dilation`` steps back:
    ``[tasks, S, D]`` for the support positions (zeros before the start) and ``[tasks, M, D]``
    for queries at positions ``prefix [M]`` (the support example ``prefix - dilation``)."""
    s = support.shape[1]
    back = nn.functional.pad(support, (0, 0, dilation, 0))[:, :s]
    idx = prefix - dilation
    valid = (idx >= 0).to(query.dtype)[None, :, None]
    return back, support[:, idx.clamp_min(0)] * valid


class DenseBlock(nn.Module):
    """A causal, dilated, gated convolution (kernel 2) whose output is concatenated to its input."""

    def __init__(self, channels: int, filters: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.now = nn.Linear(channels, 2 * filters)
        self.back = nn.Linear(channels, 2 * filters, bias=False)

    def forward(self, support: torch.Tensor, query: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        back_s, back_q = causal_taps(support, query, prefix, self.dilation)

        def gated(x: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
            a, b = (self.now(x) + self.back(back)).chunk(2, -1)
            return torch.cat([x, torch.tanh(a) * torch.sigmoid(b)], -1)  # the gated activation of WaveNet

        return gated(support, back_s), gated(query, back_q)


class TCBlock(nn.Sequential):
    """Dense blocks of dilations 1, 2, 4, ... enough to see ``length`` steps back."""

    def __init__(self, channels: int, length: int, filters: int):
        layers = [DenseBlock(channels + i * filters, filters, 2**i) for i in range(max(1, math.ceil(math.log2(length))))]
        super().__init__(*layers)
        self.out_channels = channels + len(layers) * filters

    def forward(self, support: torch.Tensor, query: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        for block in self:
            support, query = block(support, query, prefix)
        return support, query


class AttentionBlock(nn.Module):
    """Causal scaled dot-product attention; its read is concatenated to the input."""

    def __init__(self, channels: int, key_size: int, value_size: int):
        super().__init__()
        self.key_size = key_size
        self.qkv = nn.Linear(channels, 2 * key_size + value_size)
        self.out_channels = channels + value_size

    def forward(self, support: torch.Tensor, query: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.key_size
        qs, ks, vs = self.qkv(support).split([k, k, self.qkv.out_features - 2 * k], -1)
        qq, kq, vq = self.qkv(query).split([k, k, self.qkv.out_features - 2 * k], -1)
        scale = 1.0 / math.sqrt(k)
        s = support.shape[1]
        pos = torch.arange(s, device=support.device)
        # Support position t reads positions <= t; a query at position p reads supports < p and itself.
        ss = (qs @ ks.transpose(-1, -2) * scale).masked_fill(pos[None, :] > pos[:, None], float("-inf"))
        read_s = torch.softmax(ss, -1) @ vs
        qsup = (qq @ ks.transpose(-1, -2) * scale).masked_fill(pos[None, :] >= prefix[:, None], float("-inf"))
        qself = (qq * kq).sum(-1, keepdim=True) * scale
        w = torch.softmax(torch.cat([qsup, qself], -1), -1)
        read_q = w[..., :s] @ vs + w[..., s:] * vq
        return torch.cat([support, read_s], -1), torch.cat([query, read_q], -1)


class SNAILNet(SequenceModel):
    """Encoder, attention / TC blocks over the support sequence and the queries, linear output."""

    def __init__(self, family: SupervisedFamily[Any], config: SNAILConfig):
        super().__init__(family, config)
        w = config.width
        # The longest training sequence: the support set (shots per class for classification) and a query.
        per_round = self.outputs if self.classification else 1
        length = per_round * (config.train_shots or family.shots) + 1
        channels = self.feat + self.outputs + 1
        blocks: list[nn.Module] = []
        for kind, a, b in (("att", w // 2, w // 4), ("tc", w, 0), ("att", 2 * w, w), ("tc", w, 0), ("att", 4 * w, 2 * w)):
            block: AttentionBlock | TCBlock = AttentionBlock(channels, a, b) if kind == "att" else TCBlock(channels, length, a)
            blocks.append(block)
            channels = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(channels, self.outputs)

    def forward(self, episode: Episode, ways: int, rounds: Sequence[int]) -> torch.Tensor:
        fs, fq = self.encode(episode)
        tasks, n_query = fs.shape[0], fq.shape[1]
        labels = self.label_input(episode.support_y)
        support = torch.cat([fs, labels, torch.ones_like(labels[..., :1])], -1)
        k1 = len(rounds)
        # Every query after each prefix of k rounds: [tasks, rounds * Q, D], at position k * ways.
        prefix = (torch.tensor(list(rounds), device=fs.device) * ways).repeat_interleave(n_query)
        query = torch.cat([fq.repeat(1, k1, 1), fq.new_zeros(tasks, k1 * n_query, labels.shape[-1] + 1)], -1)
        for block in self.blocks:
            support, query = block(support, query, prefix)
        out = self.out(query).view(tasks, k1, n_query, self.outputs)
        return out[..., :ways] if self.classification else out


class SNAIL(SequenceLearner):
    """SNAIL (``--algo snail``): temporal convolutions and causal attention over the support set."""

    name: ClassVar[str] = "snail"
    config_class: ClassVar[type] = SNAILConfig
    config: SNAILConfig

    def build_model(self, family: SupervisedFamily[Any], config: SNAILConfig) -> SequenceModel:
        return SNAILNet(family, config)
