"""metarl/Sinusoid-v0: task ranges per split, episode shapes and values, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import metarl
from metarl.core.errors import UsageError
from metarl.core.seeding import task_rng
from metarl.envs.sinusoid import SinusoidFamily, SinusoidTask
from metarl.run.config import family_default


@pytest.fixture
def family() -> SinusoidFamily:
    fam = metarl.make_family("metarl/Sinusoid-v0")
    assert isinstance(fam, SinusoidFamily)
    return fam


def test_registered_as_a_supervised_regression_family(family):
    assert family.kind == "supervised" and family.problem == "regression"
    assert family.input_shape == (1,) and family.num_outputs == 1
    assert "metarl/Sinusoid-v0" in metarl.list_families(kind="supervised")


@pytest.mark.parametrize(
    "split,amp,phase",
    [("train", (0.1, 5.0), (0.0, math.pi)), ("test", (0.1, 5.0), (0.0, math.pi)),
     ("ood", (5.0, 10.0), (math.pi, 2 * math.pi))],
)
def test_task_ranges_per_split(family, split, amp, phase):
    tasks = family.sample_tasks(2000, split, task_rng(0, split))
    a = np.array([t.amplitude for t in tasks])
    p = np.array([t.phase for t in tasks])
    assert a.min() >= amp[0] and a.max() <= amp[1] and p.min() >= phase[0] and p.max() <= phase[1]
    # they fill the range (uniform), not a corner of it
    assert a.min() < amp[0] + 0.05 * (amp[1] - amp[0]) and a.max() > amp[1] - 0.05 * (amp[1] - amp[0])
    assert p.min() < phase[0] + 0.05 * (phase[1] - phase[0]) and p.max() > phase[1] - 0.05 * (phase[1] - phase[0])


def test_episode_shapes_values_and_input_range(family):
    task = SinusoidTask(2.0, 0.5)
    ep = family.sample_episode(task, 5, 7, np.random.default_rng(0))
    assert ep.support_x.shape == (5, 1) and ep.support_y.shape == (5, 1)
    assert ep.query_x.shape == (7, 1) and ep.query_y.shape == (7, 1)
    assert ep.support_x.dtype == torch.float32
    for x, y in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y)):
        torch.testing.assert_close(y, 2.0 * torch.sin(x - 0.5))
        assert x.min() >= -5 and x.max() <= 5
    assert not set(ep.support_x.flatten().tolist()) & set(ep.query_x.flatten().tolist())


def test_batched_episodes_match_single_episodes_and_are_reproducible(family):
    tasks = family.sample_tasks(6, "test", task_rng(1, "test"))
    batch = family.sample_episodes(tasks, 10, 4, np.random.default_rng(5))
    assert batch.support_x.shape == (6, 10, 1) and batch.query_y.shape == (6, 4, 1)
    rng = np.random.default_rng(5)
    singles = [family.sample_episode(t, 10, 4, rng) for t in tasks]
    for i, ep in enumerate(singles):
        torch.testing.assert_close(batch.support_x[i], ep.support_x)
        torch.testing.assert_close(batch.query_y[i], ep.query_y)
    again = family.sample_episodes(tasks, 10, 4, np.random.default_rng(5))
    torch.testing.assert_close(again.query_x, batch.query_x)
    other = family.sample_episodes(tasks, 10, 4, np.random.default_rng(6))
    assert not torch.equal(other.query_x, batch.query_x)


def test_family_arguments_are_validated_and_settable():
    custom = metarl.make_family("metarl/Sinusoid-v0", amplitude_range=(1.0, 2.0), input_range=(0.0, 1.0))
    assert custom.split_ranges("ood")[0] == (2.0, 4.0)
    ep = custom.sample_episode(SinusoidTask(1.0, 0.0), 50, 0, np.random.default_rng(0))
    assert ep.support_x.min() >= 0 and ep.support_x.max() <= 1
    with pytest.raises(ValueError, match="LOW < HIGH"):
        SinusoidFamily(amplitude_range=(5.0, 1.0))
    with pytest.raises(UsageError, match="amplitude_range"):
        family_default("metarl/Sinusoid-v0", {"amplitude_range": [-1.0, 1.0]})
    with pytest.raises(TypeError, match="SinusoidTask"):
        custom.sample_episode(metarl.make_family("metarl/Bandit-v0").sample_tasks(1)[0], 1, 1, np.random.default_rng(0))
