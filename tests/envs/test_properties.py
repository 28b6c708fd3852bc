"""Property-based tests over every registered family (hypothesis draws the seeds, the number
of sub-envs, the actions and the bad inputs): the batched env equals ``SyncVectorEnv`` over the
single env on deterministic tasks, every invalid action is refused before it changes anything,
and a task holding NaN is refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metarl
from metarl.core.registry import family_spec

RL_FAMILIES = metarl.list_families(kind="rl")

# Arguments under which a family's outcomes are deterministic given tasks and actions.
DETERMINISTIC_KWARGS: dict[str, dict[str, Any]] = {
    "metarl/TabularMDP-v0": {"reward_noise": 0.0},
    **{f"metarl/{name}-v0": {"reset_noise_scale": 0.0}
       for name in ("HalfCheetahVel", "HalfCheetahDir", "AntDir", "HalfCheetahDynamics")},
}


def _examples(family_id: str) -> int:
    return 3 if family_spec(family_id).requires else 15  # simulator families step slowly


@pytest.mark.parametrize("family_id", RL_FAMILIES)
def test_batched_env_equals_sync_vector_env_on_random_deterministic_tasks(family_id):
    family = metarl.make_family(family_id, **DETERMINISTIC_KWARGS.get(family_id, {}))

    @settings(max_examples=_examples(family_id), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**31 - 1), num_envs=st.integers(1, 5),
           mode=st.sampled_from([AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]))
    def check(seed: int, num_envs: int, mode: AutoresetMode) -> None:
        tasks = family.deterministic_tasks(num_envs, np.random.default_rng(seed))
        assert tasks, f"{family_id} has no deterministic tasks with {DETERMINISTIC_KWARGS.get(family_id, {})}"
        space = gym.vector.utils.batch_space(family.action_space, num_envs)
        space.seed(seed)
        actions = [space.sample() for _ in range(min(2 * family.max_episode_steps + 3, 60))]
        envs = (family.make_vec_env(num_envs, tasks, autoreset_mode=mode),
                SyncVectorEnv([lambda t=t: family.make_env(t) for t in tasks], autoreset_mode=mode))
        first = [env.reset(seed=seed)[0] for env in envs]
        np.testing.assert_allclose(first[0], first[1], rtol=1e-5, atol=1e-6)
        for t, a in enumerate(actions):
            ours, ref = (env.step(a)[:4] for env in envs)
            for name, u, v in zip(("obs", "reward", "terminated", "truncated"), ours, ref, strict=True):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6, err_msg=f"{name} at step {t}")
        for env in envs:
            env.close()

    check()


def _invalid_actions(space: gym.Space) -> st.SearchStrategy[Any]:
    """Actions that do not belong to ``space``: out of range, of the wrong type, not finite,
    or of the wrong shape."""
    shape = tuple(space.shape or ())
    wrong_shape = st.integers(1, 3).map(lambda n: np.zeros((*shape, n), dtype=space.dtype))
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n)
        return st.one_of(
            st.integers(-10**6, low - 1), st.integers(high, 10**6),
            st.floats(allow_nan=True).map(np.float64), wrong_shape,
        )
    assert isinstance(space, gym.spaces.Box)

    def poisoned(draw_index: int, value: float) -> np.ndarray:
        a = np.zeros(shape, dtype=space.dtype)
        a.flat[draw_index % a.size] = value
        return a

    return st.one_of(
        st.builds(poisoned, st.integers(0, 10**6), st.sampled_from([np.nan, np.inf, -np.inf])), wrong_shape,
    )


@pytest.mark.parametrize("family_id", RL_FAMILIES)
def test_every_invalid_action_is_refused_and_changes_nothing(family_id):
    family = metarl.make_family(family_id, **DETERMINISTIC_KWARGS.get(family_id, {}))
    task = (family.deterministic_tasks(1, np.random.default_rng(0)) or family.sample_tasks(1))[0]

    @settings(max_examples=2 * _examples(family_id), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(bad=_invalid_actions(family.action_space), position=st.integers(0, 2))
    def check(bad: Any, position: int) -> None:
        valid = family.action_space.sample()
        env, ref = family.make_env(task), family.make_env(task)
        env.reset(seed=1)
        ref.reset(seed=1)
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
        np.testing.assert_allclose(env.step(valid)[0], ref.step(valid)[0], err_msg="a refused action changed the env")
        vec = family.make_vec_env(3, [task] * 3)
        vec.reset(seed=1)
        batch = [valid, valid, valid]
        batch[position] = bad
        with pytest.raises(ValueError, match="action"):
            vec.step(np.stack([np.asarray(a) for a in batch]) if np.asarray(bad).shape == np.asarray(valid).shape
                     else batch)
        with pytest.raises(ValueError, match="3 actions"):
            vec.step(np.stack([valid, valid]))  # one action short
        for e in (env, ref, vec):
            e.close()

    check()


def _with_nan(value: Any) -> tuple[Any, bool]:
    """``value`` with its first float replaced by NaN (through nested tuples), and whether one was."""
    if isinstance(value, float):
        return float("nan"), True
    if isinstance(value, tuple):
        out = list(value)
        for i, v in enumerate(out):
            out[i], done = _with_nan(v)
            if done:
                return tuple(out), True
    return value, False


@pytest.mark.parametrize("family_id", metarl.list_families())
def test_a_task_holding_nan_is_refused(family_id):
    family = metarl.make_family(family_id)
    try:
        task = family.sample_tasks(1, "test")[0]
    except FileNotFoundError as exc:  # a data-backed family without its data
        pytest.skip(str(exc))
    for field in dataclasses.fields(task):
        poisoned, done = _with_nan(getattr(task, field.name))
        if done:
            with pytest.raises(ValueError):
                family.validate_task(dataclasses.replace(task, **{field.name: poisoned}))
            return
    pytest.skip(f"{type(task).__name__} has no float field")
