"""The action distributions shared by RL² and MAML-PG, against torch.distributions and autograd."""

import torch

from metarl.rl.distributions import ActionDistribution


def test_discrete_kl_hessian_matches_autograd():
    dist = ActionDistribution(discrete=True)
    old = torch.randn(3, 4, dtype=torch.float64)
    u = torch.randn(3, 4, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(lambda z: dist.kl(old, z).sum(), old.clone())
    torch.testing.assert_close(dist.kl_hessian_vector(old, u), torch.einsum("aibj,bj->ai", hess, u))


def test_gaussian_kl_and_log_prob_match_torch_distributions():
    dist = ActionDistribution(discrete=False)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    x = torch.randn(5, 2, generator=g)
    p = torch.distributions.Normal(a[:, :2], a[:, 2:].exp())
    q = torch.distributions.Normal(b[:, :2], b[:, 2:].exp())
    torch.testing.assert_close(dist.kl(a, b), torch.distributions.kl_divergence(p, q).sum(-1))
    torch.testing.assert_close(dist.log_prob(a, x), p.log_prob(x).sum(-1))


def test_entropy_and_sampling_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    logits, gauss = torch.randn(6, 3, generator=g), torch.randn(6, 4, generator=g)
    cat, normal = ActionDistribution(True), ActionDistribution(False)
    ref_cat = torch.distributions.Categorical(logits=logits)
    ref_normal = torch.distributions.Normal(gauss[:, :2], gauss[:, 2:].exp())
    torch.testing.assert_close(cat.entropy(logits), ref_cat.entropy())
    torch.testing.assert_close(normal.entropy(gauss), ref_normal.entropy().sum(-1))
    for dist, d, ref in ((cat, logits, ref_cat.log_prob), (normal, gauss, lambda a: ref_normal.log_prob(a).sum(-1))):
        action, logp = dist.sample(d, torch.Generator().manual_seed(2))
        torch.testing.assert_close(logp, ref(action))
    assert torch.equal(cat.sample(logits, greedy=True)[0], logits.argmax(-1))
    assert torch.equal(normal.sample(gauss, greedy=True)[0], gauss[:, :2])


def test_gumbel_max_samples_follow_the_categorical():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.7])).expand(20_000, 3)
    action, _ = ActionDistribution(True).sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(action, minlength=3).double() / len(action)
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64), atol=0.015, rtol=0)
