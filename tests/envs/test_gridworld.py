"""Oracle tests of metarl/HiddenGoalGrid-v0: walls, goal reward, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest

import metarl
from metarl.core.seeding import task_rng
from metarl.envs.gridworld import GOAL_REWARD, STEP_REWARD, GridTask, HiddenGoalGridFamily

UP, DOWN, LEFT, RIGHT, STAY = range(5)


def test_walls_keep_the_agent_on_the_grid():
    env = HiddenGoalGridFamily().make_env(GridTask((4, 4)))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    for a in (LEFT, DOWN):
        obs, reward, *_ = env.step(a)
        np.testing.assert_array_equal(obs, [0.0, 0.0])
        assert reward == STEP_REWARD
    for _ in range(6):
        obs, *_ = env.step(RIGHT)
    np.testing.assert_array_equal(obs, [1.0, 0.0])
    obs, *_ = env.step(UP)
    np.testing.assert_array_equal(obs, [1.0, 0.25])


def test_goal_pays_on_every_step_spent_there_and_episode_truncates():
    env = HiddenGoalGridFamily().make_env(GridTask((1, 2)))
    env.reset(seed=0)
    rewards, truncs = [], []
    for a in [UP, UP, RIGHT, STAY, LEFT, RIGHT] + [STAY] * 9:
        _, r, term, trunc, _ = env.step(a)
        rewards.append(r)
        truncs.append(trunc)
        assert not term
    assert rewards[:6] == [STEP_REWARD, STEP_REWARD, GOAL_REWARD, GOAL_REWARD, STEP_REWARD, GOAL_REWARD]
    assert truncs == [False] * 14 + [True]


def test_splits_partition_the_cells_except_the_start():
    family = HiddenGoalGridFamily()
    cells = {s: {tuple(c) for c in family.goal_cells(s).tolist()} for s in ("train", "test", "ood")}
    assert [len(cells[s]) for s in ("train", "test", "ood")] == [10, 8, 6]
    assert not (cells["train"] & cells["test"]) and not (cells["ood"] & (cells["train"] | cells["test"]))
    assert cells["train"] | cells["test"] | cells["ood"] | {(0, 0)} == {(x, y) for x in range(5) for y in range(5)}
    for split in ("train", "test", "ood"):
        goals = {t.goal for t in family.sample_tasks(300, split, task_rng(0, split))}
        assert goals == cells[split]  # every cell of the split is drawn, and no other


def test_batched_env_gives_each_sub_env_its_own_goal():
    family = metarl.make_family("metarl/HiddenGoalGrid-v0")
    env = family.make_vec_env(3, [GridTask((1, 0)), GridTask((0, 1)), GridTask((2, 2))])
    env.reset(seed=0)
    _, reward, *_ = env.step(np.array([RIGHT, RIGHT, RIGHT]))
    np.testing.assert_array_equal(reward, [GOAL_REWARD, STEP_REWARD, STEP_REWARD])


def test_invalid_goals_are_rejected():
    family = HiddenGoalGridFamily()
    for goal in ((0, 0), (5, 1)):
        with pytest.raises(ValueError):
            family.validate_task(GridTask(goal))
