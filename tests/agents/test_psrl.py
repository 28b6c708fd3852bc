"""PSRL on tabular MDPs: planning is exact when the posterior is certain, and it beats random."""

import numpy as np
import pytest

import metarl
from metarl.agents.psrl import PSRLAgent, PSRLConfig, PSRLPolicy
from metarl.core.registry import algo_spec


def _value_iteration(means, probs, horizon):
    v = np.zeros(probs.shape[0])
    qs = []
    for _ in range(horizon):
        q = means + probs @ v
        qs.append(q)
        v = q.max(axis=1)
    return qs[::-1]  # qs[h] for step h of the episode


def test_plan_equals_value_iteration_when_posterior_is_certain():
    family = metarl.make_family("metarl/TabularMDP-v0", num_states=4, num_actions=3, horizon=5)
    task = family.sample_tasks(1, "test")[0]
    means, probs = np.array(task.means), np.array(task.transitions)
    policy = PSRLPolicy(family, np.random.default_rng(0))
    policy.begin_trial(1)
    big = 1e9
    policy.counts[0] = big * probs
    policy.visits[0] = big
    policy.reward_sums[0] = big * means
    policy._plan(np.array([0]))
    for h, q in enumerate(_value_iteration(means, probs, 5)):
        np.testing.assert_allclose(policy.q[0, h], q, atol=1e-3)


def test_psrl_beats_random_and_refuses_other_families():
    family = metarl.make_family("metarl/TabularMDP-v0", n=5)
    tasks = family.sample_tasks(300, "test")
    psrl = PSRLAgent(PSRLConfig(), family).evaluate(tasks, seed=0).scores
    rand = algo_spec("random").load()
    rnd = rand(rand.config_class(), family).evaluate(tasks, seed=0).scores
    assert psrl.mean() > rnd.mean() + 5  # about 58 against 50 for five episodes (CI about ±1.5)
    with pytest.raises(ValueError, match="tabular MDP"):
        PSRLAgent(PSRLConfig(), metarl.make_family("metarl/Bandit-v0"))
