"""The conformance suite (``metarl.conformance``, also ``python -m metarl.check``) on every
registered family, one test per family and check, so a new family is covered the moment it is
registered; and the suite itself: it fails where it should."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest

import metarl
from metarl.conformance import CHECKS, check_env_strictly, check_family
from metarl.core.registry import family_spec
from metarl.envs.nav2d import Nav2DFamily, Nav2DTask

# Checks that take seconds on a simulator family (MuJoCo, Meta-World): marked slow there.
HEAVY = {"tasks reproducible, JSON round trip", "same seed, same rollout", "batched env = SyncVectorEnv, exactly",
         "batched env = SyncVectorEnv, in distribution"}


def _cases() -> list[Any]:
    cases = []
    for family_id in metarl.list_families():
        spec = family_spec(family_id)
        for name, (kind, _) in CHECKS.items():
            if kind in ("any", spec.kind):
                marks = [pytest.mark.slow] if spec.requires and name in HEAVY else []
                cases.append(pytest.param(family_id, name, marks=marks, id=f"{family_id}: {name}"))
    return cases


@pytest.mark.parametrize("family_id,check", _cases())
def test_every_family_conforms(family_id, check):
    (result,) = check_family(family_id, only=[check]).results
    if result.passed is None:
        pytest.skip(result.detail)
    assert result.passed, result.detail


@dataclasses.dataclass(frozen=True)
class _SameSplits(Nav2DFamily):
    """A broken family: its test tasks are its train tasks (the rule the suite enforces)."""

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[Nav2DTask]:
        return super()._sample_tasks(n, "train", np.random.default_rng(0))


def test_the_suite_reports_a_family_whose_test_tasks_are_its_train_tasks():
    report = check_family(_SameSplits())
    assert not report.ok
    (failure,) = report.failures()
    assert failure.name == "train and test tasks differ" and "50 test tasks are also train tasks" in failure.detail
    assert "FAIL  train and test tasks differ" in str(report)
    with pytest.raises(AssertionError, match="train and test tasks differ"):
        report.raise_for_failures()


def test_unknown_checks_are_named():
    with pytest.raises(ValueError, match="unknown check"):
        check_family("metarl/Bandit-v0", only=["nonsense"])


class _WarnsEnv(gym.Env):
    """A valid env whose unbounded action space the checker warns about (a warning that is not
    allowed, beside one that is)."""

    observation_space: ClassVar[gym.Space] = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space: ClassVar[gym.Space] = gym.spaces.Box(0.0, np.inf, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


def test_the_strict_checker_fails_on_a_warning_it_does_not_allow():
    with pytest.raises(AssertionError, match="A Box action space maximum value is infinity"):
        check_env_strictly(_WarnsEnv())
