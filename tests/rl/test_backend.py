"""The torch backend of array families (metarl/rl/backend.py, DeviceBatchedTaskEnv): what the
conformance suite does not cover on its own."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import metarl
from metarl.conformance import check_family
from metarl.envs.tabular_mdp import TabularMDPFamily
from metarl.rl import backend
from metarl.rl.array_family import DeviceBatchedTaskEnv, make_vec_env
from metarl.rl.spaces import TensorActionCheck


def test_numpy_arrays_get_numpy_itself_and_tensors_the_array_api_namespace():
    assert backend.namespace(np.zeros(2)) is np
    xp = backend.namespace(torch.zeros(2))
    assert xp is not torch and xp.astype(torch.ones(2), xp.int64).dtype == torch.int64


@pytest.mark.parametrize("draw", ["random", "normal", "uniform"])
def test_draws_come_from_the_generator_given(draw):
    def sample(rng):
        if draw == "uniform":
            low = torch.zeros(3000, dtype=torch.float64) if isinstance(rng, torch.Generator) else np.zeros(3000)
            return backend.uniform(rng, low - 2.0, low + 3.0)
        return getattr(backend, draw)(rng, 3000)

    a, b = sample(torch.Generator().manual_seed(1)), sample(torch.Generator().manual_seed(1))
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float64 and torch.equal(a, b)
    assert not torch.equal(a, sample(torch.Generator().manual_seed(2)))
    ref = sample(np.random.default_rng(0))
    assert isinstance(ref, np.ndarray)
    # Same distribution on both backends (3000 draws: means within 5 standard errors).
    assert abs(float(a.mean()) - ref.mean()) < 5 * ref.std() * np.sqrt(2 / 3000)
    assert float(a.std()) == pytest.approx(ref.std(), rel=0.1)


def test_noiseless_tabular_mdp_agrees_exactly_on_both_backends():
    # The registered family has reward noise, so the suite can only compare it in distribution.
    report = check_family(TabularMDPFamily(reward_noise=0.0), only=["device env = NumPy env, exactly"])
    (result,) = report.results
    assert result.passed is True, result.detail


def test_make_vec_env_puts_array_families_on_the_device_and_refuses_simulators():
    env = make_vec_env(metarl.make_family("metarl/Bandit-v0", k=3), 4, device="cpu")
    assert isinstance(env, DeviceBatchedTaskEnv)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor)
    assert not isinstance(make_vec_env(metarl.make_family("metarl/Bandit-v0"), 4), DeviceBatchedTaskEnv)

    class Host:  # stands for a simulator family: not an ArrayRLFamily
        pass

    with pytest.raises(ValueError, match="not an array family"):
        make_vec_env(Host(), 2, device="cpu")  # type: ignore[arg-type]


def test_gymnasium_make_vec_passes_device_through():
    env = gym.make_vec("metarl/Nav2D-v0", num_envs=3, vectorization_mode="vector_entry_point", device="cpu")
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (3, 2)
    plain = gym.make_vec("metarl/Nav2D-v0", num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(plain.reset(seed=0)[0], np.ndarray)


def test_invalid_device_actions_raise_at_once_on_the_cpu():
    env = metarl.make_family("metarl/Bandit-v0", k=3).make_vec_env(2, device="cpu")
    env.reset(seed=0)
    for bad in (torch.tensor([0, 3]), torch.tensor([-1, 0]), torch.tensor([0.0, 1.0]), torch.tensor([0, 1, 2])):
        with pytest.raises(ValueError):
            env.step(bad)
    env.step(np.array([2, 0]))  # arrays are accepted too
    box = metarl.make_family("metarl/Nav2D-v0").make_vec_env(2, device="cpu")
    box.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        box.step(torch.full((2, 2), float("nan")))


def test_deferred_checks_clamp_and_raise_at_the_next_reset():
    # What an accelerator does, tried on the CPU: no read of the device in step.
    check = TensorActionCheck(gym.spaces.Discrete(3), 2, torch.device("cpu"), defer=True)
    assert check(torch.tensor([0, 2])).tolist() == [0, 2]
    check.raise_pending()  # nothing invalid
    assert check(torch.tensor([5, -1])).tolist() == [2, 0]  # clamped: the env never indexes out of range
    check(torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="outside the space"):
        check.raise_pending()
    check.raise_pending()  # reported once


def test_same_step_info_always_holds_the_final_observations():
    env = metarl.make_family("metarl/Nav2D-v0", horizon=2).make_vec_env(2, autoreset_mode=AutoresetMode.SAME_STEP,
                                                                        device="cpu")
    env.reset(seed=0)
    _, _, _, _, info = env.step(torch.zeros(2, 2))
    assert info["_final_obs"].tolist() == [False, False]
    _, _, _, trunc, info = env.step(torch.full((2, 2), 0.1))
    assert trunc.tolist() == [True, True] and info["_final_obs"].tolist() == [True, True]
    assert torch.allclose(info["final_obs"], torch.full((2, 2), 0.1))
