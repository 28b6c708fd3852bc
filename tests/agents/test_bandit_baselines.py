"""Oracle tests of the non-learning bandit baselines and the random policy."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pytest
from gymnasium import spaces

import metarl
from metarl.agents.bandit_baselines import (
    BayesOptimalAgent,
    BayesOptimalConfig,
    EpsilonGreedyAgent,
    EpsilonGreedyConfig,
    GreedyPolicy,
    UCB1Config,
    UCB1Policy,
    bayes_optimal_num_states,
    bayes_optimal_value,
)
from metarl.agents.random_policy import RandomAgent, RandomConfig, sample_actions
from metarl.core.registry import algo_spec
from metarl.core.seeding import task_rng
from metarl.core.task import Task
from metarl.envs.bandit import BanditFamily, BanditTask
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.rollout import run_trials

BANDIT_ALGOS = ("greedy", "epsilon_greedy", "ucb1", "thompson", "bayes_optimal")
ALL_ALGOS = ("random", *BANDIT_ALGOS)


def make_agent(name: str, family, **config):
    cls = algo_spec(name).load()
    return cls(cls.config_class(**config), family, seed=0)


def one_paying_arm_tasks(k: int) -> list[Task]:
    """k tasks: arm i pays always, the others never."""
    return [BanditTask(tuple(float(i == j) for j in range(k))) for i in range(k)]


# --------------------------------------------------------------------------- Bayes-optimal value


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (1, 1, 0.5),
        (1, 2, 1.0),
        (1, 7, 3.5),  # one arm: n pulls of mean 1/2
        # First pull 1/2; after a success that arm's posterior mean is 2/3, after a failure
        # the other arm's 1/2 is best: 1/2 + 1/2 * 2/3 + 1/2 * 1/2.
        (2, 2, 0.5 + 0.5 * 2 / 3 + 0.5 * 0.5),
        (3, 1, 0.5),
    ],
)
def test_bayes_optimal_value_hand_cases(k, n, expected):
    assert bayes_optimal_value(k, n) == pytest.approx(expected, abs=1e-12)


def brute_force_value(k: int, n: int) -> float:
    """Bellman recursion over ordered per-arm counts, without the canonical states."""

    @functools.cache
    def value(counts: tuple[tuple[int, int], ...], left: int) -> float:
        if left == 0:
            return 0.0
        best = -1.0
        for i, (s, f) in enumerate(counts):
            p = (s + 1) / (s + f + 2)
            win = counts[:i] + ((s + 1, f),) + counts[i + 1 :]
            lose = counts[:i] + ((s, f + 1),) + counts[i + 1 :]
            best = max(best, p * (1 + value(win, left - 1)) + (1 - p) * value(lose, left - 1))
        return best

    return value(((0, 0),) * k, n)


@pytest.mark.parametrize(("k", "n"), [(2, 1), (2, 4), (2, 7), (3, 4), (4, 3)])
def test_bayes_optimal_value_matches_brute_force(k, n):
    assert bayes_optimal_value(k, n) == pytest.approx(brute_force_value(k, n), abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (1, 6), (2, 5), (3, 6), (5, 4), (4, 7)])
def test_state_count_matches_enumeration(k, n):
    pairs = [(s, f) for s in range(n) for f in range(n - s)]
    states = [c for c in itertools.combinations_with_replacement(pairs, k) if sum(s + f for s, f in c) < n]
    assert bayes_optimal_num_states(k, n) == len(states)


def test_bayes_optimal_refuses_huge_problems_naming_the_limit():
    family = BanditFamily(k=5, n=100)
    with pytest.raises(ValueError, match=r"k=5 arms and n=100 pulls.*max_states=5,000,000.*n<=29 fits"):
        BayesOptimalAgent(BayesOptimalConfig(), family)
    with pytest.raises(ValueError, match="max_states=1,000"):
        bayes_optimal_value(2, 30, max_states=1000)
    assert bayes_optimal_num_states(5, 29) <= 5_000_000 < bayes_optimal_num_states(5, 30)


def test_bayes_optimal_monte_carlo_matches_value_and_beats_the_others():
    family = BanditFamily(k=2, n=5)
    tasks = family.sample_tasks(20_000, "train", task_rng(0, "train"))
    totals = {
        name: run_trials(make_agent(name, family).trial_policy(0), family, tasks).returns.sum(axis=1)
        for name in ALL_ALGOS
    }
    best = totals["bayes_optimal"]
    se = best.std(ddof=1) / math.sqrt(len(best))
    assert abs(best.mean() - bayes_optimal_value(2, 5)) < 3 * se
    for name, other in totals.items():
        diff = best - other  # same tasks and reward draws: a paired comparison
        assert diff.mean() >= -3 * diff.std(ddof=1) / math.sqrt(len(diff)), name


# --------------------------------------------------------------------------- the index policies


def test_greedy_exploits_an_arm_for_good_once_it_pays_off():
    family = BanditFamily(k=4, n=15)
    tasks = family.deterministic_tasks(64, np.random.default_rng(1))
    returns = make_agent("greedy", family).evaluate(tasks).curve
    for probs, row in zip((t.probs for t in tasks), returns, strict=True):
        if 1.0 in probs:
            first = int(np.argmax(row))
            assert row[first] == 1.0 and (row[first:] == 1.0).all()
            assert first < probs.count(0.0) + 1  # each failing arm is tried at most once
        else:
            assert (row == 0.0).all()


@pytest.mark.parametrize(
    ("name", "n", "slack", "config"),
    [
        ("greedy", 50, 4, {}),
        ("thompson", 50, 10, {}),
        ("ucb1", 50, 10, {}),
        ("epsilon_greedy", 50, 10, {"epsilon": 0.1}),
        ("bayes_optimal", 10, 4, {}),
    ],
)
def test_policies_find_the_only_paying_arm(name, n, slack, config):
    family = BanditFamily(k=5, n=n)
    tasks = one_paying_arm_tasks(5) * 40
    scores = make_agent(name, family, **config).evaluate(tasks).scores
    assert scores.mean() >= n - slack
    if name in ("greedy", "bayes_optimal"):
        assert scores.min() >= n - 4  # at most one failure per zero arm


def test_ucb1_index_by_hand():
    # Arm 0: 3 successes -> mean 4/5 over n_0 = 5 pseudo-pulls; arm 1 unpulled -> 1/2 over 2;
    # t = 7. c=1: 0.8 + sqrt(2 ln7 / 5) = 1.682 < 0.5 + sqrt(2 ln7 / 2) = 1.895 -> arm 1.
    # c=0.2: 0.8 + 0.176 = 0.976 > 0.5 + 0.279 = 0.779 -> arm 0.
    for c, arm in [(1.0, 1), (0.2, 0)]:
        policy = UCB1Policy(2, np.random.default_rng(0), c)
        policy.begin_trial(1)
        policy.successes[0] = [3, 0]
        assert policy.act(np.zeros((1, 1))).tolist() == [arm]


def test_greedy_breaks_ties_uniformly():
    policy = GreedyPolicy(4, np.random.default_rng(0))
    policy.begin_trial(40_000)
    policy.successes[:, 3] = 1  # arm 3 is best everywhere
    assert (policy.act(np.zeros((40_000, 1))) == 3).all()
    policy.begin_trial(40_000)
    counts = np.bincount(policy.act(np.zeros((40_000, 1))), minlength=4)
    assert np.abs(counts / 40_000 - 0.25).max() < 0.015


def test_epsilon_one_is_uniformly_random():
    family = BanditFamily(k=3, n=20)
    agent = EpsilonGreedyAgent(EpsilonGreedyConfig(epsilon=1.0), family)
    scores = agent.evaluate(one_paying_arm_tasks(3) * 1000).scores
    se = scores.std(ddof=1) / math.sqrt(len(scores))
    assert abs(scores.mean() - 20 / 3) < 3 * se


def test_configs_validate():
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedyConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="c must be"):
        UCB1Config(c=-1.0)
    with pytest.raises(ValueError, match="max_states"):
        BayesOptimalConfig(max_states=0)


# --------------------------------------------------------------------------- shared behaviour


def test_random_gets_half_the_pulls_on_uniform_tasks():
    family = BanditFamily(k=5, n=20)
    scores = make_agent("random", family).evaluate(family.sample_tasks(4000, "test", task_rng(0, "test"))).scores
    assert abs(scores.mean() - 10.0) < 3 * scores.std(ddof=1) / math.sqrt(len(scores))


@pytest.mark.parametrize("name", ALL_ALGOS)
def test_same_seed_same_results(name):
    family = BanditFamily(k=3, n=12)
    tasks = family.sample_tasks(300, "test", task_rng(0, "test"))
    agent = make_agent(name, family)
    first, again = agent.evaluate(tasks, seed=5).curve, agent.evaluate(tasks, seed=5).curve
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, agent.evaluate(tasks, seed=6).curve)  # the env's draws differ


@pytest.mark.parametrize("name", BANDIT_ALGOS)
def test_bandit_policies_refuse_other_families(name):
    cls = algo_spec(name).load()
    with pytest.raises(ValueError, match=r"only on Bernoulli bandit families.*TabularMDPFamily"):
        cls(cls.config_class(), metarl.make_family("metarl/TabularMDP-v0"))


@pytest.mark.parametrize("name", ALL_ALGOS)
def test_registered_as_rl_baselines(name):
    spec = algo_spec(name)
    cls = spec.load()
    assert (spec.kind, cls.name, cls.kind, cls.learns) == ("rl", name, "rl", False)


# --------------------------------------------------------------------------- random on any family


@dataclasses.dataclass(frozen=True)
class PushTask(Task):
    scale: float


@dataclasses.dataclass(frozen=True)
class PushFamily(ArrayRLFamily[PushTask]):
    """A tiny continuous-action family: reward = scale * a[0], three steps per episode."""

    task_type = PushTask
    stochastic: ClassVar[bool] = False
    episodes_per_trial: ClassVar[int] = 2  # type: ignore[misc]
    max_episode_steps: ClassVar[int] = 3  # type: ignore[misc]
    observation_space: ClassVar[spaces.Box] = spaces.Box(0.0, 1.0, (1,), np.float32)  # type: ignore[misc]
    action_space: ClassVar[spaces.Box] = spaces.Box(-1.0, 1.0, (2,), np.float32)  # type: ignore[misc]

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[PushTask]:
        return [PushTask(float(s)) for s in rng.uniform(1.0, 2.0, n)]

    def task_params(self, tasks: Sequence[PushTask]) -> Params:
        return {"scale": np.array([t.scale for t in tasks])}

    def new_state(self, num_envs: int) -> State:
        return {}

    def reset_state(self, params: Params, state: State, idx: Index, rng: np.random.Generator) -> None:
        pass

    def step_state(self, params, state, actions, idx, rng):
        assert actions.shape[1:] == (2,) and np.abs(actions).max() <= 1.0
        return params["scale"][idx] * actions[:, 0], np.zeros(len(actions), dtype=bool)

    def observe(self, params: Params, state: State, idx: Index) -> np.ndarray:
        return np.zeros((len(params["scale"][idx]), 1), dtype=np.float32)


def test_random_runs_on_a_continuous_action_family():
    family = PushFamily()
    result = RandomAgent(RandomConfig(), family).evaluate(family.sample_tasks(2000))
    assert result.curve.shape == (2000, 2)
    assert abs(result.scores.mean()) < 3 * result.scores.std(ddof=1) / math.sqrt(2000)  # E[a] = 0
    assert RandomAgent(RandomConfig(trial_episodes=5), family).evaluate(family.sample_tasks(3)).curve.shape == (3, 5)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3, start=2),
        spaces.Box(-2.0, 3.0, (2, 2)),
        spaces.MultiDiscrete([2, 5]),
        spaces.MultiBinary(4),
        spaces.Box(-np.inf, np.inf, (3,)),
    ],
)
def test_sample_actions_stay_in_the_space(space):
    actions = sample_actions(space, 500, np.random.default_rng(0))
    assert actions.shape == (500, *space.shape)
    assert all(space.contains(a) for a in actions)
    np.testing.assert_array_equal(actions, sample_actions(space, 500, np.random.default_rng(0)))
