"""Oracle tests of metarl/TabularMDP-v0: sampled transitions and rewards follow the task."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import metarl
from metarl.core.seeding import task_rng
from metarl.envs.tabular_mdp import TabularMDPFamily, TabularMDPTask


def test_next_states_and_rewards_follow_the_task():
    family = TabularMDPFamily()
    task = family.sample_tasks(1, "train", task_rng(1, "train"))[0]
    batch, repeats, s, a = 2_000, 20, 3, 2
    n = batch * repeats
    params = {k: np.repeat(v, batch, axis=0) for k, v in family.task_params([task]).items()}
    state = family.new_state(batch)
    rng = np.random.default_rng(0)
    nexts, rewards = [], []
    for _ in range(repeats):
        state["s"][:] = s
        reward, terminated = family.step_state(params, state, np.full(batch, a), slice(None), rng)
        nexts.append(state["s"].copy())
        rewards.append(reward)
    reward = np.concatenate(rewards)
    p = np.asarray(task.transitions[s][a])
    freq = np.bincount(np.concatenate(nexts), minlength=family.num_states) / n
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-9)
    assert abs(reward.mean() - task.means[s][a]) < 5 / np.sqrt(n)
    assert abs(reward.std() - family.reward_noise) < 0.03
    assert not terminated.any()


def test_partial_index_steps_only_the_selected_sub_envs():
    family = TabularMDPFamily(reward_noise=0.0)
    tasks = family.deterministic_tasks(4, np.random.default_rng(2))
    params, state = family.task_params(tasks), family.new_state(4)
    family.reset_state(params, state, slice(None), np.random.default_rng(0))
    idx = np.array([1, 3])
    actions = np.array([4, 0])
    reward, _ = family.step_state(params, state, actions, idx, np.random.default_rng(0))
    for i, k, a in zip(idx, range(2), actions, strict=True):
        assert reward[k] == tasks[i].means[0][a]
        assert state["s"][i] == int(np.argmax(tasks[i].transitions[0][a]))
    assert state["s"][0] == 0 and state["s"][2] == 0


def test_one_hot_observation_start_state_and_horizon():
    family = metarl.make_family("metarl/TabularMDP-v0", num_states=4, num_actions=3, horizon=6)
    env = family.make_env()
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [1, 0, 0, 0])
    assert obs.dtype == np.float32
    for t in range(6):
        obs, _, term, trunc, _ = env.step(1)
        assert obs.sum() == 1.0 and not term
        assert trunc == (t == 5)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_noiseless_batched_env_equals_sync_vector_env(mode):
    """The conformance suite skips the exact test at the default reward noise; run it here."""
    family = TabularMDPFamily(reward_noise=0.0)
    tasks = family.deterministic_tasks(6, np.random.default_rng(0))
    actions = np.random.default_rng(1).integers(0, family.num_actions, size=(35, 6))
    native = family.make_vec_env(6, tasks, autoreset_mode=mode)
    sync = SyncVectorEnv([lambda t=t: family.make_env(t) for t in tasks], autoreset_mode=mode)
    for env in (native, sync):
        env.reset(seed=0)
    for a in actions:
        ours, ref = native.step(a), sync.step(a)
        for u, v in zip(ours[:4], ref[:4], strict=True):
            np.testing.assert_array_equal(u, v)


def test_deterministic_tasks_only_without_reward_noise():
    assert TabularMDPFamily().deterministic_tasks(3, np.random.default_rng(0)) == []
    tasks = TabularMDPFamily(reward_noise=0.0).deterministic_tasks(3, np.random.default_rng(0))
    assert all(set(np.ravel(t.transitions)) <= {0.0, 1.0} for t in tasks)


def test_ood_transitions_are_sparser_and_rewards_wider():
    family = TabularMDPFamily()
    train = family.sample_tasks(50, "train", task_rng(0, "train"))
    ood = family.sample_tasks(50, "ood", task_rng(0, "ood"))
    peak = {k: np.mean([np.max(t.transitions, axis=-1).mean() for t in v]) for k, v in (("train", train), ("ood", ood))}
    spread = {k: np.std([t.means for t in v]) for k, v in (("train", train), ("ood", ood))}
    assert peak["ood"] > peak["train"] + 0.3
    assert 1.7 < spread["ood"] / spread["train"] < 2.3
    for t in ood:
        family.validate_task(t)


def test_validate_task_names_the_expected_shapes():
    family = TabularMDPFamily(num_states=3, num_actions=2)
    bad = TabularMDPTask(means=((0.0,),), transitions=(((1.0,),),))
    with pytest.raises(ValueError, match="num_states=3"):
        family.make_env(bad)
