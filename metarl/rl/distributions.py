"""Action distributions of metarl's policies, written once for RL² and MAML-PG.

A policy network outputs *distribution parameters* ``d`` for every leading index: logits for
a discrete action space, ``[mean, log_std]`` (concatenated on the last axis) for a diagonal
Gaussian in ``[-1, 1]`` action units (:class:`metarl.rl.spaces.SpaceCodec` maps those to the
env's bounds). The methods below are plain tensor code with no distribution objects, so they
run fast on the sampling hot path and differentiate to any order (MAML-PG's meta-gradient
and Fisher-vector products go through them).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch

_LOG_2PI = math.log(2 * math.pi)


class ActionDistribution:
    """Categorical (``discrete``) or diagonal-Gaussian action distribution over parameters ``d``."""

    def __init__(self, discrete: bool):
        self.discrete = discrete

    @staticmethod
    def for_space(space: gym.Space) -> ActionDistribution:
        """Categorical for ``Discrete`` actions, Gaussian for ``Box`` ones."""
        if isinstance(space, gym.spaces.Discrete):
            return ActionDistribution(True)
        if isinstance(space, gym.spaces.Box):
            return ActionDistribution(False)
        raise TypeError(f"metarl policies support Box and Discrete action spaces, got {space}")

    @staticmethod
    def gaussian_params(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        """``d = [mean, log_std]`` with a state-independent ``log_std`` broadcast to ``mean``."""
        return torch.cat([mean, log_std.expand_as(mean)], dim=-1)

    def log_prob(self, d: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log pi(a)`` for every leading index."""
        if self.discrete:
            return torch.log_softmax(d, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        mean, log_std = d.chunk(2, dim=-1)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self, d: torch.Tensor) -> torch.Tensor:
        """Entropy for every leading index."""
        if self.discrete:
            logp = torch.log_softmax(d, -1)
            return -(logp.exp() * logp).sum(-1)
        return (d.chunk(2, dim=-1)[1] + 0.5 * (_LOG_2PI + 1.0)).sum(-1)

    def kl(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """``KL(old || new)`` for every leading index."""
        if self.discrete:
            lp_old, lp_new = torch.log_softmax(old, -1), torch.log_softmax(new, -1)
            return (lp_old.exp() * (lp_old - lp_new)).sum(-1)
        m0, s0 = old.chunk(2, dim=-1)
        m1, s1 = new.chunk(2, dim=-1)
        return (s1 - s0 + (torch.exp(2 * s0) + (m0 - m1) ** 2) / (2 * torch.exp(2 * s1)) - 0.5).sum(-1)

    def kl_hessian_vector(self, old: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``M u`` with ``M`` the Hessian of ``KL(old || new)`` in ``new`` at ``new = old``:
        ``diag(1 / sigma^2, 2)`` for ``[mean, log_std]``, ``diag(p) - p p^T`` for logits."""
        if self.discrete:
            p = torch.softmax(old, -1)
            return p * u - p * (p * u).sum(-1, keepdim=True)
        mean_u, log_std_u = u.chunk(2, dim=-1)
        log_std = old.chunk(2, dim=-1)[1]
        return torch.cat([mean_u * torch.exp(-2 * log_std), 2 * log_std_u], dim=-1)

    def sample(self, d: torch.Tensor, generator: torch.Generator | None = None,
               greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """An action per leading index (the mode when ``greedy``) and its log-probability."""
        if self.discrete:
            logp_all = torch.log_softmax(d, -1)
            if greedy:
                action = d.argmax(-1)
            else:  # Gumbel-max: one uniform draw per logit, no distribution object on the hot path
                u = torch.rand(d.shape, generator=generator, device=d.device).clamp_(1e-10, 1.0)
                action = (logp_all - torch.log(-torch.log(u))).argmax(-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        mean, log_std = d.chunk(2, dim=-1)
        action = mean if greedy else mean + log_std.exp() * torch.randn(mean.shape, generator=generator, device=d.device)
        return action, self.log_prob(d, action)
