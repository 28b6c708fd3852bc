"""Conformance tests run for every registered RL family, so a new family is covered the
moment it is registered: Gymnasium's env checker, reproducibility, task JSON round trips,
and the native batched env against ``SyncVectorEnv`` over the single env."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import metarl
from metarl.core.errors import DatasetNotFoundError
from metarl.core.seeding import SPLITS, task_rng
from tests.helpers import check_env_strictly, slow_if_simulated

RL_FAMILIES = metarl.list_families(kind="rl")
ALL_FAMILIES = metarl.list_families()


def _actions(space: gym.Space, steps: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _rollout_vec(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    out = [(obs.copy(), None, None, None, None)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        final = info.get("final_obs") if "_final_obs" in info else None
        mask = info.get("_final_obs")
        out.append((obs.copy(), r.copy(), term.copy(), trunc.copy(), (final, mask)))
    return out


def _sync(family, tasks, mode):
    return SyncVectorEnv([lambda t=t: family.make_env(t) for t in tasks], autoreset_mode=mode)


@pytest.mark.parametrize("family_id", slow_if_simulated(ALL_FAMILIES))
def test_tasks_round_trip_through_json_and_splits_are_reproducible(family_id):
    family = metarl.make_family(family_id)
    try:
        family.sample_tasks(1, "train")
    except DatasetNotFoundError as exc:  # a data-backed family on a fresh clone without its data
        pytest.skip(str(exc))
    for split in SPLITS:
        tasks = family.sample_tasks(4, split, task_rng(3, split))
        again = family.sample_tasks(4, split, task_rng(3, split))
        assert tasks == again, "same seed must give the same tasks"
        for task in tasks:
            text = json.dumps(task.to_json())
            assert family.task_from_json(json.loads(text)) == task
            assert hash(task) == hash(family.task_from_json(text))
    train = family.sample_tasks(4, "train", task_rng(3, "train"))
    test = family.sample_tasks(4, "test", task_rng(3, "test"))
    assert not set(train) & set(test), "train and test streams must be disjoint"


@pytest.mark.parametrize("family_id", RL_FAMILIES)
def test_single_env_passes_gymnasium_checker_without_warnings(family_id):
    check_env_strictly(gym.make(family_id).unwrapped)


class _WarnsEnv(gym.Env):
    """A valid env whose unbounded action space the checker warns about (a warning that is not
    allowed, beside one that is)."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(0.0, np.inf, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


def test_the_strict_checker_fails_on_a_warning_it_does_not_allow():
    with pytest.raises(AssertionError, match="A Box action space maximum value is infinity"):
        check_env_strictly(_WarnsEnv())


@pytest.mark.parametrize("family_id", RL_FAMILIES)
def test_reset_task_option_switches_and_plain_reset_keeps_task(family_id):
    family = metarl.make_family(family_id)
    a, b = family.sample_tasks(2, "test")
    env = gym.make(family_id)
    env.reset(seed=0, options={"task": a})
    assert env.unwrapped.task == a
    env.reset(options={"task": b})
    assert env.unwrapped.task == b
    env.reset()
    assert env.unwrapped.task == b


@pytest.mark.parametrize("family_id", slow_if_simulated(RL_FAMILIES))
def test_same_seed_same_rollout(family_id):
    family = metarl.make_family(family_id)
    tasks = family.sample_tasks(8, "train")
    steps = 3 * family.max_episode_steps + 5
    actions = _actions(gym.vector.utils.batch_space(family.action_space, 8), steps, seed=1)
    runs = []
    for _ in range(2):
        env = gym.make_vec(family_id, num_envs=8)
        env.unwrapped.set_tasks(tasks) if hasattr(env.unwrapped, "set_tasks") else None
        runs.append(_rollout_vec(env, actions, seed=5))
    for x, y in zip(*runs, strict=True):
        for u, v in zip(x[:4], y[:4], strict=True):
            np.testing.assert_array_equal(u, v)
    single = []
    for _ in range(2):
        env = gym.make(family_id)
        obs, _ = env.reset(seed=9, options={"task": tasks[0]})
        traj = [obs]
        for a in actions[: family.max_episode_steps]:
            obs, r, term, trunc, _ = env.step(a[0])
            traj += [obs, r, term, trunc]
            if term or trunc:
                break
        single.append(traj)
    for u, v in zip(*single, strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("family_id", slow_if_simulated(RL_FAMILIES))
def test_batched_env_matches_sync_vector_env_exactly_when_deterministic(family_id, mode):
    family = metarl.make_family(family_id)
    tasks = family.deterministic_tasks(6, np.random.default_rng(0))
    if not tasks:
        pytest.skip(f"{family_id} has no tasks with deterministic outcomes; see the in-distribution test")
    steps = 3 * family.max_episode_steps + 4
    actions = _actions(gym.vector.utils.batch_space(family.action_space, len(tasks)), steps, seed=2)
    native = family.make_vec_env(len(tasks), tasks, autoreset_mode=mode)
    assert native.metadata["autoreset_mode"] == mode
    ours = _rollout_vec(native, actions, seed=0)
    ref = _rollout_vec(_sync(family, tasks, mode), actions, seed=0)
    for step, (x, y) in enumerate(zip(ours, ref, strict=True)):
        for name, u, v in zip(("obs", "reward", "terminated", "truncated"), x[:4], y[:4], strict=True):
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6, err_msg=f"{name} differs at step {step}")
        if mode == AutoresetMode.SAME_STEP and x[4] is not None:
            (final, mask), (ref_final, ref_mask) = x[4], y[4]
            np.testing.assert_array_equal(mask if mask is not None else False, ref_mask if ref_mask is not None else False)
            if mask is not None:
                for i in np.flatnonzero(mask):
                    np.testing.assert_allclose(final[i], ref_final[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family_id", slow_if_simulated([f for f in RL_FAMILIES if metarl.make_family(f).stochastic]))
def test_batched_env_matches_sync_vector_env_in_distribution(family_id):
    """Same tasks, same actions: per-task mean reward and observation agree (paired t-test)."""
    family = metarl.make_family(family_id)
    n = 48
    tasks = family.sample_tasks(n, "train", np.random.default_rng(4))
    steps = max(200, 4 * family.max_episode_steps)
    actions = _actions(gym.vector.utils.batch_space(family.action_space, n), steps, seed=3)
    stats = []
    for env in (family.make_vec_env(n, tasks), _sync(family, tasks, AutoresetMode.NEXT_STEP)):
        run = _rollout_vec(env, actions, seed=11)
        rewards = np.stack([r for _, r, *_ in run[1:]])
        obs = np.stack([np.asarray(o, dtype=np.float64).reshape(n, -1).mean(axis=1) for o, *_ in run])
        stats.append((rewards.mean(axis=0), obs.mean(axis=0)))
    for k, name in enumerate(("reward", "observation")):
        d = stats[0][k] - stats[1][k]
        se = d.std(ddof=1) / np.sqrt(n)
        if se == 0:
            np.testing.assert_allclose(d, 0, atol=1e-9, err_msg=name)
            continue
        assert abs(d.mean() / se) < 4.0, f"mean {name} differs between batched and single env: t = {d.mean() / se:.2f}"


@pytest.mark.parametrize("family_id", RL_FAMILIES)
def test_per_env_tasks_reach_the_batched_env(family_id):
    family = metarl.make_family(family_id)
    tasks = family.sample_tasks(5, "test")
    env = gym.make_vec(family_id, num_envs=5)
    env.reset(seed=0, options={"tasks": tasks})
    assert env.unwrapped.tasks == tasks
    with pytest.raises(ValueError, match="5"):
        env.unwrapped.set_tasks(tasks[:2])
