"""experiments/rl2_commitment.py: late-pull statistics against hand-computed cases."""

import numpy as np
import pytest

from metarl.agents.bandit_baselines import UCB1Agent, UCB1Config
from metarl.envs.bandit import BanditFamily, BanditTask
from tests.helpers import load_experiment


@pytest.fixture(scope="module")
def script():
    return load_experiment("rl2_commitment")


def test_commitment_oracle(script):
    probs = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    # Task 0 commits to its best arm for 3 of 4 late pulls; task 1 to arm 2 (not its best) for all 4.
    arms = np.array([[1, 2, 0, 0, 0, 1], [0, 1, 2, 2, 2, 2]])
    stats = script.commitment(arms, probs, late_from=2)
    assert stats["late pulls on the best arm"] == pytest.approx(3 / 8)
    assert stats["committed arm is the best"] == pytest.approx(0.5)
    assert stats["share of late pulls on the committed arm"] == pytest.approx((3 / 4 + 1) / 2)
    assert stats["regret per pull of the committed arm"] == pytest.approx((0.0 + 0.5) / 2)


def test_pulls_record_every_arm_and_reward(script):
    family = BanditFamily(k=3, n=12)
    # Deterministic arms: the total reward is the number of pulls of the one paying arm.
    tasks = [BanditTask(probs=(1.0, 0.0, 0.0)), BanditTask(probs=(0.0, 0.0, 1.0))]
    arms, totals = script.pulls(UCB1Agent(UCB1Config(), family).trial_policy(0), family, tasks)
    assert arms.shape == (2, 12)
    np.testing.assert_array_equal(totals, [(arms[0] == 0).sum(), (arms[1] == 2).sum()])
    assert totals[0] > 4 and totals[1] > 4  # UCB1 finds the paying arm
