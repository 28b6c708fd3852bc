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
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from metarl.agent import TrialAgent
from metarl.batched import RLFamily
from metarl.rollout import TrialPolicy

# ``run_trials`` seeds batch b's env with ``seed + b``, and Gymnasium turns that seed into
# ``Generator(PCG64(SeedSequence(seed)))`` -- exactly what ``default_rng(seed)`` gives. A
# policy seeded the same way would draw from the environment's own stream, so its random
# choices would be correlated with the rewards. A spawn key gives the policy a stream of
# its own that still depends only on the seed.
_POLICY_SPAWN_KEY = 104729


def policy_rng(seed: int) -> np.random.Generator:
    """The generator of a non-learning policy evaluated with ``seed``.

    Independent of the environments' streams (see ``_POLICY_SPAWN_KEY``) and of global
    random state.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_POLICY_SPAWN_KEY,)))


def family_action_space(family: RLFamily) -> gym.Space:
    """The action space of one environment of ``family``."""
    space = getattr(family, "action_space", None)
    if isinstance(space, gym.Space):
        return space
    env = family.make_env()  # families that are not array families only expose it on an env
    try:
        return env.action_space
    finally:
        env.close()


def sample_actions(space: gym.Space, num_envs: int, rng: np.random.Generator) -> Any:
    """``num_envs`` independent uniform samples of ``space``, stacked along a first axis.

    Discrete, bounded float Box, MultiDiscrete and MultiBinary spaces are sampled with one
    array call on ``rng``. Any other space (e.g. an unbounded Box, where "uniform" has no
    meaning) falls back on Gymnasium's own sampler of the batched space, seeded from ``rng``.
    """
    if isinstance(space, spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=num_envs).astype(space.dtype)
    if isinstance(space, spaces.Box) and space.is_bounded("both") and np.issubdtype(space.dtype, np.floating):
        return rng.uniform(space.low, space.high, size=(num_envs, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        low = space.start
        return rng.integers(low, low + space.nvec, size=(num_envs, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiBinary):
        return rng.integers(0, 2, size=(num_envs, *np.atleast_1d(space.n))).astype(space.dtype)
    batched = batch_space(space, num_envs)
    batched.seed(int(rng.integers(2**63)))
    return batched.sample()


class RandomPolicy:
    """A :class:`~metarl.rollout.TrialPolicy` that acts uniformly at random and learns nothing."""

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
class RandomConfig:
    """Settings of the uniformly random baseline."""

    trial_episodes: int = dataclasses.field(
        default=0, metadata={"help": "episodes per evaluation trial (0: the family's default)"}
    )

    def __post_init__(self) -> None:
        if self.trial_episodes < 0:
            raise ValueError(f"trial_episodes must be >= 0 (0 means the family's default), got {self.trial_episodes}")


class RandomAgent(TrialAgent):
    """Uniformly random actions on any RL family (a non-learning baseline)."""

    name: ClassVar[str] = "random"
    config_class: ClassVar[type] = RandomConfig
    kind: ClassVar[str] = "rl"
    learns: ClassVar[bool] = False

    def __init__(self, config: RandomConfig, family: Any, seed: int = 0, device: Any = "cpu"):
        super().__init__(config, family, seed=seed, device=device)
        self.action_space = family_action_space(family)

    def trial_policy(self, seed: int) -> TrialPolicy:
        return RandomPolicy(self.action_space, policy_rng(seed))
