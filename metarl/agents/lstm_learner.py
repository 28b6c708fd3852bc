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
~10^5 episodes to learn (Santoro et al. 2016's LSTM baseline).

The output is an MLP of the LSTM output and the query's encoding plus a *bilinear*
readout, ``W(h) enc(x_q)`` with ``W(h)`` an ``outputs x feat`` matrix computed linearly
from ``h``: the state writes the weights of a linear model of the query's features. An
MLP of ``[h, enc(x_q)]`` must learn to multiply the two to compare a query with what the
state holds, which it had not started to do after 72 meta-batches on Omniglot
(``experiments/RESULTS.md``); with the bilinear term, a state that sums the label (x)
feature pairs (what the input above offers) holds class means, and the readout compares
the query with them from the first updates: in 4 minutes on Omniglot 5-way 1-shot it reached
33.8% held-out accuracy where the MLP alone stayed at chance (``experiments/RESULTS.md``).

Shared with SNAIL (:mod:`metarl.fewshot.sequence`): the reading order (rounds of one
example per class), the input encoder, training on the query loss after ``k`` = 1, 2, 5,
10, ... and ``shots`` rounds, evaluation and checkpoints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from metarl.core.checks import check_positive
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import SupervisedFamily
from metarl.fewshot.sequence import SequenceLearner, SequenceLearnerConfig, SequenceModel


@dataclasses.dataclass(frozen=True)
class LSTMConfig(SequenceLearnerConfig):
    """The LSTM meta-learner. Defaults suit K-shot sinusoid regression on CPU; the shots come
    from the family's ``--shots`` (and ``--queries``)."""

    iterations: int = dataclasses.field(default=10_000, metadata={"help": "meta-iterations (outer updates) to train"})
    hidden_size: int = dataclasses.field(default=128, metadata={"help": "LSTM state size"})
    bilinear: bool = dataclasses.field(
        default=True, metadata={"help": "add the bilinear readout W(h) enc(x_q) to the MLP head (off: the MLP alone)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("hidden_size",))


class RecurrentLearner(SequenceModel):
    """Encoder, LSTM cell over ``(enc(x_t), y_{t-1}, y_{t-1} (x) enc(x_{t-1}), has_label)`` and a head."""

    def __init__(self, family: SupervisedFamily[Any], config: LSTMConfig):
        super().__init__(family, config)
        feat = self.feat
        self.cell = nn.LSTMCell(feat + self.outputs * (feat + 1) + 1, config.hidden_size)
        self.head = nn.Sequential(nn.Linear(config.hidden_size + feat, config.hidden_size), nn.ReLU(),
                                  nn.Linear(config.hidden_size, self.outputs))
        self.readout = nn.Linear(config.hidden_size, self.outputs * feat) if config.bilinear else None

    def forward(self, episode: Episode, ways: int, rounds: Sequence[int]) -> torch.Tensor:
        fs, fq = self.encode(episode)
        n_support, n_query = fs.shape[1], fq.shape[1]
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
        # Every query from the state after each of the rounds, in one batched step: [tasks, rounds, queries, ...].
        hs, cs, prevs = (torch.stack(s, 1) for s in zip(*[states[k] for k in rounds], strict=True))
        k1 = hs.shape[1]
        q = fq[:, None].expand(-1, k1, -1, -1)
        inp = torch.cat([q, prevs[:, :, None].expand(-1, -1, n_query, -1)], -1)
        size = hs.shape[-1]
        hq, _ = self.cell(inp.reshape(-1, inp.shape[-1]),
                          (hs[:, :, None].expand(-1, -1, n_query, -1).reshape(-1, size),
                           cs[:, :, None].expand(-1, -1, n_query, -1).reshape(-1, size)))
        hq = hq.view(tasks, k1, n_query, size)
        out = self.head(torch.cat([hq, q], -1))
        if self.readout is not None:
            weights = self.readout(hq).view(tasks, k1, n_query, self.outputs, self.feat)
            out = out + (weights @ q.unsqueeze(-1)).squeeze(-1)
        return out[..., :ways] if self.classification else out


class LSTMLearner(SequenceLearner):
    """The LSTM meta-learner (``--algo lstm``)."""

    name: ClassVar[str] = "lstm"
    config_class: ClassVar[type] = LSTMConfig
    config: LSTMConfig

    def build_model(self, family: SupervisedFamily[Any], config: LSTMConfig) -> SequenceModel:
        return RecurrentLearner(family, config)
