"""The uniformly random policy: a floor that works on every RL family.

It ignores observations and rewards and samples each action uniformly from the family's
action space, for all sub-envs at once. On the Bernoulli bandit with ``p_i ~ U[0, 1]``
its expected total reward is ``n / 2``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from metarl.core.seeding import policy_rng
from metarl.rl.agent import TrialAgent, TrialConfig
from metarl.rl.rollout import TrialPolicy
from metarl.rl.spaces import sample_actions


class RandomPolicy:
    """A :class:`~metarl.rl.rollout.TrialPolicy` that acts uniformly at random and learns nothing."""

    def __init__(self, space: gym.Space, rng: np.random.Generator):
        self.space = space
        self.rng = rng
        self.num_envs = 0

    def begin_trial(self, num_envs: int) -> None:
        self.num_envs = num_envs

    def act(self, obs: np.ndarray) -> Any:
        return sample_actions(self.space, self.num_envs, self.rng)

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class RandomConfig(TrialConfig):
    """Settings of the uniformly random baseline."""


class RandomAgent(TrialAgent):
    """Uniformly random actions on any RL family (a non-learning baseline)."""

    name: ClassVar[str] = "random"
    config_class: ClassVar[type] = RandomConfig
    kind: ClassVar[str] = "rl"
    learns: ClassVar[bool] = False

    def trial_policy(self, seed: int) -> TrialPolicy:
        return RandomPolicy(self.family.action_space, policy_rng(seed))
