"""Simulator families declare what one environment costs in memory: agents refuse batches of
environments that would not fit, and evaluation batches stay small enough, whatever the machine."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig
from metarl.agents.random_policy import RandomAgent, RandomConfig
from metarl.agents.rl2 import RL2, RL2Config
from metarl.envs.nav2d import Nav2DFamily


@dataclasses.dataclass(frozen=True)
class _Heavy(Nav2DFamily):
    """Nav2D declaring environments of 64 GiB each (no machine here holds two)."""

    env_bytes: ClassVar[int] = 64 * 2**30


@dataclasses.dataclass(frozen=True)
class _Large(Nav2DFamily):
    """Nav2D declaring environments of 1 GiB each: two to an evaluation batch."""

    env_bytes: ClassVar[int] = 2**30


def test_agents_refuse_environments_that_would_not_fit():
    with pytest.raises(ValueError, match=r"--num-trials 8 .*8 environments of about 65536 MiB.*make it smaller"):
        RL2(RL2Config(num_trials=8), _Heavy(horizon=5))
    with pytest.raises(ValueError, match=r"--meta-batch 2 \(and --eval-batch 3\) x --trajectories 2 .*10 environments"):
        MAMLPG(MAMLPGConfig(meta_batch=2, eval_batch=3, trajectories=2), _Heavy(horizon=5))


def test_evaluation_batches_follow_the_familys_environment_size():
    assert Nav2DFamily().eval_batch() == 4096 and _Large().eval_batch() == 2 and _Heavy().eval_batch() == 1
    family = _Large(horizon=5)
    tasks = family.sample_tasks(5, "test")
    small = RandomAgent(RandomConfig(), family).evaluate(tasks, seed=3)
    assert small.curve.shape == (5, family.episodes_per_trial)
    # Batches of two reset with seeds 3, 4, 5: the first batch matches a plain family's first two tasks.
    plain = RandomAgent(RandomConfig(), Nav2DFamily(horizon=5)).evaluate(tasks[:2], seed=3)
    assert small.curve[:2].tolist() == plain.curve.tolist()
