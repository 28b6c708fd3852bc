"""Returns and advantages shared by every RL agent: discounted returns, GAE, and the
linear feature baseline.

All functions take time-major tensors ``[T, N]``: step ``t`` of sequence ``n``.
``dones[t, n]`` is True when sequence ``n`` ends *after* step ``t`` (no bootstrap
across it). For RL² the sequence is the whole trial, so an episode end inside a trial
is not a done here (Duan et al. 2016, section 2.2).
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float,
                       last_value: torch.Tensor | None = None) -> torch.Tensor:
    """``G_t = r_t + gamma * (1 - done_t) * G_{t+1}``, bootstrapped from ``last_value``."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0]) if last_value is None else last_value.to(rewards.dtype)
    notdone = 1.0 - dones.to(rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * notdone[t] * running
        out[t] = running
    return out


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16).

    ``delta_t = r_t + gamma (1 - done_t) V_{t+1} - V_t`` and
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``; returns ``(advantages, A + V)``.
    """
    notdone = 1.0 - dones.to(rewards.dtype)
    next_values = torch.cat([values[1:], last_value[None].to(values.dtype)], dim=0)
    deltas = rewards + gamma * notdone * next_values - values
    adv = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * notdone[t] * running
        adv[t] = running
    return adv, adv + values


def feature_baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Features of Duan et al. 2016's linear baseline for ``[..., T, N, D]`` observations:
    ``[o, o², t, t², t³, 1]`` with ``o`` clipped to ±10 and ``t`` the step index / 100;
    zero where ``mask`` is False so padding does not enter the fit."""
    o = obs.clamp(-10.0, 10.0)
    steps = obs.shape[-3]
    t = (torch.arange(steps, device=obs.device, dtype=obs.dtype) / 100.0).view(steps, 1, 1)
    t = t.expand(*obs.shape[:-1], 1)
    feats = torch.cat([o, o * o, t, t * t, t * t * t, torch.ones_like(t)], dim=-1)
    return feats * mask.unsqueeze(-1).to(obs.dtype)


def linear_feature_baseline(obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                            reg: float = 1e-5) -> torch.Tensor:
    """Value estimates from a per-task linear regression of returns on state features.

    The linear feature baseline of Duan et al. 2016 (used by MAML, Finn et al. 2017): for
    each task (leading dimensions of ``obs[..., T, N, D]``) it fits ridge-regression weights
    on that task's own trajectories and returns the fitted values, zero where ``mask`` is
    False. All tasks are solved in one batched ``torch.linalg.solve``; when a system is
    ill-conditioned the ridge coefficient grows tenfold, up to five times.
    """
    x = feature_baseline_features(obs, mask).flatten(-3, -2)  # [..., T*N, F]
    y = (returns * mask.to(returns.dtype)).flatten(-2).unsqueeze(-1)  # [..., T*N, 1]
    xtx = x.transpose(-1, -2) @ x
    xty = x.transpose(-1, -2) @ y
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    for attempt in range(5):
        try:
            weights = torch.linalg.solve(xtx + reg * 10**attempt * eye, xty)
        except RuntimeError:  # singular system (torch raises for exactly singular ones)
            continue
        if torch.isfinite(weights).all():
            break
    else:
        weights = torch.zeros_like(xty)
    return (x @ weights).squeeze(-1).view_as(returns)
