"""Posterior sampling for reinforcement learning (PSRL; Osband et al. 2013) on tabular MDPs.

The baseline of the RL² paper's tabular-MDP table (Duan et al. 2016, Table 2). At the start
of every episode each sub-env draws one MDP from its posterior — transitions from
``Dirichlet(1 + counts)``, mean rewards from the Gaussian posterior of the family's
``N(1, 1)`` prior with the known noise — and acts optimally in it for the episode, planning
by backward induction over the remaining steps. Every array operation covers all
sub-envs at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from metarl.core.seeding import policy_rng
from metarl.envs.tabular_mdp import TabularMDPFamily
from metarl.rl.agent import TrialAgent, TrialConfig
from metarl.rl.rollout import TrialPolicy

PRIOR_MEAN, PRIOR_VAR = 1.0, 1.0  # the family's N(1, 1) prior on mean rewards


class PSRLPolicy:
    """Per-sub-env posterior counts and one sampled MDP's plan per episode."""

    def __init__(self, family: TabularMDPFamily, rng: np.random.Generator):
        self.family, self.rng = family, rng
        self.s, self.a, self.h = family.num_states, family.num_actions, family.horizon
        # A noiseless family still gets a small noise variance so the posterior stays proper.
        self.noise_var = max(family.reward_noise, 1e-3) ** 2

    def begin_trial(self, num_envs: int) -> None:
        s, a = self.s, self.a
        self.counts = np.zeros((num_envs, s, a, s))
        self.visits = np.zeros((num_envs, s, a))
        self.reward_sums = np.zeros((num_envs, s, a))
        self.step = np.zeros(num_envs, dtype=np.int64)
        self.q = np.zeros((num_envs, self.h, s, a))
        self.state = np.zeros(num_envs, dtype=np.int64)
        self.last_action = np.zeros(num_envs, dtype=np.int64)
        self._plan(np.arange(num_envs))

    def _plan(self, rows: np.ndarray) -> None:
        """Sample an MDP from each listed sub-env's posterior and solve it by backward induction."""
        if rows.size == 0:
            return
        alpha = 1.0 + self.counts[rows]
        gammas = self.rng.gamma(alpha)
        p = gammas / gammas.sum(axis=-1, keepdims=True)
        precision = 1.0 / PRIOR_VAR + self.visits[rows] / self.noise_var
        mean = (PRIOR_MEAN / PRIOR_VAR + self.reward_sums[rows] / self.noise_var) / precision
        r = mean + self.rng.standard_normal(mean.shape) / np.sqrt(precision)
        v = np.zeros((len(rows), self.s))
        for h in range(self.h - 1, -1, -1):
            q = r + np.einsum("nsat,nt->nsa", p, v)
            self.q[rows, h] = q
            v = q.max(axis=-1)

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.state = obs.reshape(len(obs), -1).argmax(axis=1)
        rows = np.arange(len(obs))
        q = self.q[rows, np.minimum(self.step, self.h - 1), self.state]
        # Ties (e.g. unvisited actions with equal samples are measure-zero, but a noiseless
        # plan can tie) are broken at random.
        q = q + 1e-9 * self.rng.random(q.shape)
        self.last_action = q.argmax(axis=1)
        return self.last_action

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        rows = np.flatnonzero(active)
        s, a = self.state[rows], np.asarray(actions, dtype=np.int64)[rows]
        nxt = next_obs.reshape(len(next_obs), -1)[rows].argmax(axis=1)
        self.counts[rows, s, a, nxt] += 1.0
        self.visits[rows, s, a] += 1.0
        self.reward_sums[rows, s, a] += rewards[rows]
        self.step += 1
        ended = np.flatnonzero(dones & active)
        self.step[dones] = 0
        self._plan(ended)


@dataclasses.dataclass(frozen=True)
class PSRLConfig(TrialConfig):
    """PSRL has no hyper-parameters: its prior is the family's own."""


class PSRLAgent(TrialAgent):
    """Posterior sampling on ``metarl/TabularMDP-v0`` (non-learning baseline)."""

    name: ClassVar[str] = "psrl"
    config_class: ClassVar[type] = PSRLConfig
    learns: ClassVar[bool] = False
    default_env: ClassVar[str] = "metarl/TabularMDP-v0"

    def __init__(self, config: PSRLConfig, family: Any, seed: int = 0, device: object = "cpu"):
        if not isinstance(family, TabularMDPFamily):
            raise ValueError(f"psrl needs a tabular MDP family (metarl/TabularMDP-v0), got {type(family).__name__}")
        super().__init__(config, family, seed)
        self.mdp_family = family

    def trial_policy(self, seed: int) -> TrialPolicy:
        return PSRLPolicy(self.mdp_family, policy_rng(seed))
