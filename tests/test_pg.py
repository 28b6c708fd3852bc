"""Oracle tests for the shared policy-gradient math against hand-written loops."""

import numpy as np
import pytest
import torch

from metarl.pg import discounted_returns, gae, normalize, ppo_loss
from metarl.stats import mean_ci95, t_critical


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


def test_mean_ci95_matches_t_interval():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    mean, ci = mean_ci95(x)
    assert mean == 2.5
    assert ci == pytest.approx(3.182 * np.std(x, ddof=1) / 2)
    assert t_critical(1000) == 1.96
    assert np.isinf(mean_ci95(np.array([1.0]))[1])
