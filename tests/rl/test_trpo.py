"""TRPO's pieces: conjugate gradient on a known system, and a step inside the trust region."""

import torch

from metarl.rl.distributions import ActionDistribution
from metarl.rl.trpo import conjugate_gradient, trpo_step


def test_conjugate_gradient_solves_a_positive_definite_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=6)  # exact in n steps, in exact arithmetic
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


def test_trpo_step_respects_the_kl_limit_and_improves_the_loss():
    # A categorical policy over 4 actions; the loss rewards action 0 (a surrogate of
    # advantages (1, 0, 0, 0)); the sampling policy is uniform.
    logits = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    old = torch.log_softmax(logits.detach(), -1)
    adv = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    dist = ActionDistribution(discrete=True)

    def objective():
        lp = torch.log_softmax(logits, -1)
        return -(old.exp() * torch.exp(lp - old) * adv).sum(), dist.kl(old, logits)

    for max_kl in (0.01, 0.05):
        with torch.no_grad():
            logits.zero_()
        stats = trpo_step([logits], objective, max_kl=max_kl)
        with torch.no_grad():
            loss, kl = objective()
        assert stats.step_fraction > 0
        assert float(kl) <= max_kl + 1e-12
        assert float(loss) < -0.25  # better than the uniform policy's -0.25
        assert stats.step_fraction >= 0.25  # the step uses the trust region, not a timid fraction
