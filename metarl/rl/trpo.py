"""Trust-region policy optimisation (Schulman et al. 2015): conjugate gradient,
Fisher-vector products and the backtracking line search.

Used as MAML policy gradient's outer optimiser (Finn et al. 2017), where the parameters
are the initial policy parameters (and learned step sizes) and both the surrogate and the
KL are computed through the inner adaptation step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors concatenated into one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def set_flat_(params: Sequence[torch.Tensor], vector: torch.Tensor) -> None:
    """Copy ``vector`` into ``params`` in place (the inverse of :func:`flat`)."""
    i = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vector[i : i + n].view_as(p))
            i += n
    if i != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, the parameters {i}")


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for a symmetric positive-definite ``A`` given only
    ``matvec(v) = A v`` (Nocedal and Wright, algorithm 5.2), starting from ``x = 0``."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr <= residual_tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product(kl: torch.Tensor, params: Sequence[torch.Tensor],
                          damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (H + damping I) v`` with ``H`` the Hessian of ``kl`` in ``params``: at the
    sampling policy, where the KL and its gradient vanish, this is the Fisher information
    of the (adapted) policy pulled back to ``params``."""
    grads = flat(torch.autograd.grad(kl, params, create_graph=True))

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grads @ v, params, retain_graph=True)
        return flat(hv).detach() + damping * v

    return fvp


@dataclasses.dataclass
class TRPOStats:
    """What one TRPO step did."""

    loss_before: float
    loss_after: float
    kl: float
    step_fraction: float  # the accepted fraction of the full step, 0 when every try was rejected
    grad_norm: float


def trpo_step(
    params: Sequence[torch.Tensor],
    objective: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    max_kl: float = 0.01,
    cg_iters: int = 10,
    damping: float = 1e-5,
    backtrack: float = 0.5,
    ls_steps: int = 15,
    fvp: Callable[[torch.Tensor], torch.Tensor] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> TRPOStats:
    """One TRPO update of ``params`` in place.

    ``objective()`` returns ``(loss, kl)`` at the current values of ``params``: the loss to
    minimise (a surrogate) and the mean KL divergence from the sampling policy. The step
    direction is ``-F^-1 g`` by conjugate gradient, scaled so that the quadratic model of
    the KL equals ``max_kl``; the backtracking line search shrinks it by ``backtrack``
    until the loss decreases and the KL is at most ``max_kl`` (no step otherwise).

    ``fvp`` replaces the Hessian-vector product of the KL (:func:`fisher_vector_product`)
    with a caller's own product of the same matrix (damping included), e.g. a cheaper
    Gauss-Newton form.

    ``reduce`` averages a tensor over data-parallel processes, each holding its share of the
    tasks (:func:`metarl.core.distributed.all_reduce_mean`): it is applied to the gradient, to
    every Fisher-vector product and to the line search's losses and KLs, so every process
    computes the same step, the one of the whole meta-batch.
    """
    params = list(params)
    mean = reduce if reduce is not None else (lambda t: t)
    loss, kl = objective()
    grads = mean(flat(torch.autograd.grad(loss, params, retain_graph=True)).detach())
    local_fvp = fvp if fvp is not None else fisher_vector_product(kl, params, damping)

    def fvp_all(v: torch.Tensor) -> torch.Tensor:
        return mean(local_fvp(v))

    fvp = fvp_all if reduce is not None else local_fvp
    direction = conjugate_gradient(fvp, -grads, cg_iters)
    shs = 0.5 * (direction @ fvp(direction))
    old = flat(params).detach().clone()
    loss_before = float(mean(loss.detach()))
    stats = TRPOStats(loss_before, loss_before, 0.0, 0.0, float(grads.norm()))
    if not torch.isfinite(shs) or shs <= 0:
        return stats
    full_step = direction * torch.sqrt(max_kl / shs)
    fraction = 1.0
    for _ in range(ls_steps):
        set_flat_(params, old + fraction * full_step)
        with torch.no_grad():
            new_loss, new_kl = (mean(t) for t in objective())
        if float(new_loss) < loss_before and float(new_kl) <= max_kl:
            stats.loss_after, stats.kl, stats.step_fraction = float(new_loss), float(new_kl), fraction
            return stats
        fraction *= backtrack
    set_flat_(params, old)
    return stats
