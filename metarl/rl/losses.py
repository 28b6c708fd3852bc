"""Policy-gradient losses and the masked averages they use: PPO's clipped surrogate and
value loss, per-task means, advantage normalisation.

Masks mark the steps that count (inside a trial or trajectory); padding after a
sequence's end never enters a mean.
"""

from __future__ import annotations

import torch

from metarl.core.distributed import all_reduce_sum, world


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is True (all if ``mask`` is None)."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def normalize(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8,
              across_processes: bool = False) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries (of every data-parallel process's
    ``x`` when ``across_processes``: the statistics of the whole meta-batch)."""
    if not across_processes:
        mean = masked_mean(x, mask)
        var = masked_mean((x - mean) ** 2, mask)
        return (x - mean) / (var.sqrt() + eps)
    m = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    with torch.no_grad():
        total = all_reduce_sum(torch.stack([(x * m).sum(), m.sum()]))
        mean = total[0] / total[1].clamp_min(1.0)
        var = all_reduce_sum(((x - mean) ** 2 * m).sum()) / total[1].clamp_min(1.0)
    return (x - mean) / (var.sqrt() + eps)


def count_share(mask: torch.Tensor) -> torch.Tensor:
    """This process's share of the masked entries of the whole data-parallel batch, times the
    number of processes: a loss that is a masked mean over this process's entries, multiplied by
    it, makes the average of the processes' gradients the gradient of the mean over all entries
    (1 with one process, or when every process has as many entries)."""
    local = mask.sum().to(torch.float64)
    total = all_reduce_sum(local)
    return (local * world().size / total.clamp_min(1.0)).to(torch.float32)


def ppo_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), as a loss to minimise.

    Returns the loss and diagnostics: the approximate KL ``E[(r - 1) - log r]`` and the
    fraction of clipped ratios.
    """
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * advantages, ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    loss = -masked_mean(surrogate, mask)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
        clip_frac = masked_mean(((ratio - 1.0).abs() > clip).to(advantages.dtype), mask)
    return loss, {"approx_kl": approx_kl, "clip_fraction": clip_frac}


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip: float | None,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared value error, optionally with PPO's value clipping; half the mean."""
    err = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        err = torch.max(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


def per_task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the leading (task) one, where ``mask``: ``[tasks]``."""
    m = mask.to(x.dtype)
    dims = tuple(range(1, x.dim()))
    return (x * m).sum(dims) / m.sum(dims).clamp_min(1.0)
