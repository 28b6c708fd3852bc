"""Oracle tests for returns, advantages, the linear baseline and the PPO loss against
hand-written loops and exact fits."""

import numpy as np
import pytest
import torch

from metarl.rl.losses import normalize, ppo_loss
from metarl.rl.returns import discounted_returns, gae, linear_feature_baseline


def _gae_by_hand(rewards, values, dones, last_value, gamma, lam):
    T, N = len(rewards), len(rewards[0])
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            next_v = last_value[n] if t == T - 1 else values[t + 1][n]
            nd = 0.0 if dones[t][n] else 1.0
            delta = rewards[t][n] + gamma * nd * next_v - values[t][n]
            running = delta + gamma * lam * nd * running
            adv[t][n] = running
    return adv


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.3), (0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_gae_equals_hand_computed_loop(gamma, lam):
    rng = np.random.default_rng(0)
    T, N = 7, 3
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    dones = rng.random((T, N)) < 0.25
    last = rng.normal(size=N)
    adv, ret = gae(torch.tensor(rewards), torch.tensor(values), torch.tensor(dones), torch.tensor(last), gamma, lam)
    expected = np.array(_gae_by_hand(rewards.tolist(), values.tolist(), dones.tolist(), last.tolist(), gamma, lam))
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(ret.numpy(), expected + values, rtol=1e-12)


def test_gae_with_lambda_one_is_return_minus_value():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [0.1], [0.2]])
    dones = torch.tensor([[False], [False], [True]])
    adv, _ = gae(rewards, values, dones, torch.tensor([9.0]), 0.9, 1.0)
    g = discounted_returns(rewards, dones, 0.9)
    # G_0 = 1 + 0.9 * 2 + 0.81 * 3, and the done at the end blocks the bootstrap of 9.0
    assert g[0, 0].item() == pytest.approx(1 + 1.8 + 2.43)
    torch.testing.assert_close(adv, g - values)


def test_ppo_loss_clips_the_ratio():
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.9]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, diag = ppo_loss(new, old, adv, clip=0.2)
    # min(r A, clip(r) A): 1.2, -0.8, 1.1, -0.9
    assert loss.item() == pytest.approx(-(1.2 - 0.8 + 1.1 - 0.9) / 4)
    assert diag["clip_fraction"].item() == pytest.approx(0.5)


def test_normalize_respects_mask():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False])
    y = normalize(x, mask)
    assert y[:3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (y[:3] ** 2).mean().item() == pytest.approx(1.0, rel=1e-5)


def test_linear_feature_baseline_fits_returns_in_its_feature_span_exactly():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 7, 3, 1, generator=g, dtype=torch.float64)  # [tasks, steps, trajectories, dim]
    t = (torch.arange(7, dtype=torch.float64) / 100).view(1, 7, 1)
    returns = torch.stack([3 * obs[0, ..., 0] - obs[0, ..., 0] ** 2 + 2 * t[0] + 1,
                           -obs[1, ..., 0] + 5 * t[0] ** 2])
    mask = torch.ones(2, 7, 3, dtype=torch.bool)
    torch.testing.assert_close(linear_feature_baseline(obs, returns, mask, reg=1e-10), returns, atol=1e-5, rtol=0)
    mask[:, 5:, 0] = False  # masked steps are zero and do not enter the fit
    fitted = linear_feature_baseline(obs, returns * mask, mask, reg=1e-10)
    assert (fitted[~mask] == 0).all()
    torch.testing.assert_close(fitted[mask], returns[mask], atol=1e-5, rtol=0)


