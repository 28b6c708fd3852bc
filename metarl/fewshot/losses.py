"""Per-task losses and metrics of few-shot learners, and the distances metric learners use."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def task_loss(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss over the last two dims' examples: MSE, or cross-entropy of logits.

    ``out`` is ``[..., n, outputs]``; ``y`` is ``[..., n, outputs]`` (regression) or
    ``[..., n]`` integer labels. Leading dims are kept (one loss per task).
    """
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
    return ce.view(y.shape).mean(-1)


def task_metric(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reported metric per task: MSE (regression) or accuracy (classification)."""
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    return (out.argmax(-1) == y).float().mean(-1)


def metric_name(problem: str) -> str:
    """``query_mse`` or ``query_accuracy``: the curve name of supervised evaluations."""
    return "query_mse" if problem == "regression" else "query_accuracy"


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Class means ``[..., ways, dim]`` of support embeddings ``[..., shots * ways, dim]``
    (Snell et al. 2017, eq. 1)."""
    onehot = torch.nn.functional.one_hot(labels, ways).to(embeddings.dtype)  # [..., S, N]
    return (onehot.transpose(-1, -2) @ embeddings) / onehot.sum(dim=-2).unsqueeze(-1).clamp_min(1)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[..., n, m]`` between rows of ``a [..., n, d]`` and ``b [..., m, d]``."""
    # The expansion |a|^2 + |b|^2 - 2 a.b is one matrix product: no [n, m, d] difference tensor.
    return ((a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2) - 2 * a @ b.transpose(-1, -2)).clamp_min(0)


def cosine_similarities(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine similarities ``[..., n, m]`` between rows of ``a [..., n, d]`` and ``b [..., m, d]``."""
    return F.normalize(a, dim=-1, eps=eps) @ F.normalize(b, dim=-1, eps=eps).transpose(-1, -2)
