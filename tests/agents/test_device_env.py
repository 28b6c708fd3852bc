"""RL² and MAML-PG with their envs on torch tensors (``--env-device agent``): the rollout keeps
everything on the agent's device, and results equal the NumPy env's wherever the envs' random
draws do not enter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig
from metarl.agents.rl2 import RL2, RL2Config
from metarl.rl.agent import resolve_env_device
from metarl.rl.array_family import BatchedTaskEnv, DeviceBatchedTaskEnv


def _rl2(env_device: str, family_id: str = "metarl/Bandit-v0", **kwargs) -> RL2:
    family = metarl.make_family(family_id, **kwargs)
    return RL2(RL2Config(num_trials=16, minibatches=2, env_device=env_device, sample_eval=False), family, seed=0)


def test_rl2_trains_and_evaluates_on_the_torch_env():
    agent = _rl2("agent", k=3, n=8)
    assert isinstance(agent.env, DeviceBatchedTaskEnv)
    stats = agent.train_iteration()
    assert stats.env_steps == 16 * 8
    assert all(math.isfinite(v) for v in stats.scalars.values())
    result = agent.evaluate(agent.family.sample_tasks(5, "test"), seed=0)
    assert result.scores.shape == (5,) and np.isfinite(result.scores).all()


@pytest.mark.parametrize("family_id,kwargs", [("metarl/Bandit-v0", {"k": 4, "n": 10}),
                                              ("metarl/CartPole-v0", {"horizon": 40})])
def test_greedy_rl2_returns_equal_on_numpy_and_torch_envs(family_id, kwargs):
    # Deterministic tasks and the greedy policy: no random draw of the env or the policy enters.
    numpy_agent, torch_agent = _rl2("numpy", family_id, **kwargs), _rl2("agent", family_id, **kwargs)
    assert isinstance(numpy_agent.env, BatchedTaskEnv) and not isinstance(numpy_agent.env, DeviceBatchedTaskEnv)
    tasks = numpy_agent.family.deterministic_tasks(12, np.random.default_rng(1))
    a, b = numpy_agent.evaluate(tasks, seed=2), torch_agent.evaluate(tasks, seed=2)
    np.testing.assert_array_equal(a.curve, b.curve)


def test_maml_pg_on_the_torch_env_equals_the_numpy_env():
    # Nav2D is deterministic and the policy's draws come from the agent's torch generator.
    family = metarl.make_family("metarl/Nav2D-v0", horizon=15)
    agents = [MAMLPG(MAMLPGConfig(meta_batch=3, trajectories=4, hidden_sizes=(16,), eval_batch=3, env_device=d),
                     family, seed=0) for d in ("numpy", "agent")]
    stats = [agent.train_iteration() for agent in agents]
    assert stats[0].headline == stats[1].headline
    tasks = family.sample_tasks(3, "test")
    curves = [agent.evaluate(tasks, seed=1).curve for agent in agents]
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-6)
    assert all(isinstance(env, DeviceBatchedTaskEnv) for env in agents[1]._envs.values())


def test_env_device_auto_is_numpy_on_the_cpu_and_the_agent_device_elsewhere():
    bandit = metarl.make_family("metarl/Bandit-v0")
    cpu, accelerator = torch.device("cpu"), torch.device("cuda")  # nothing is allocated on it here
    assert resolve_env_device("auto", cpu, bandit) is None
    assert resolve_env_device("auto", accelerator, bandit) == accelerator
    assert resolve_env_device("numpy", accelerator, bandit) is None
    assert resolve_env_device("agent", cpu, bandit) == cpu
    host_only = object()  # stands for a simulator family (MuJoCo), which steps on the host
    assert resolve_env_device("auto", accelerator, host_only) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="array family"):
        resolve_env_device("agent", cpu, host_only)  # type: ignore[arg-type]
