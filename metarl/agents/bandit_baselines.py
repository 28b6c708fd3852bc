"""Classical Bernoulli-bandit policies: the baselines of RL² (Duan et al. 2016, table 1).

Every policy keeps, per sub-env, the success and failure counts ``s, f`` of each arm
(arrays of shape ``[num_envs, k]``) and acts on all sub-envs with one array operation.
All start from the ``Beta(1, 1)`` prior of the family's ``p_i ~ U[0, 1]``: RL² initialises
UCB1 and greedy "with one success and one failure", which is the same thing. So an arm's
posterior mean is ``(s + 1) / (s + f + 2)``.

- ``greedy``: the arm of highest posterior mean.
- ``epsilon_greedy``: a uniformly random arm with probability ``epsilon``, else greedy.
- ``ucb1``: posterior mean plus ``c * sqrt(2 ln t / n_i)`` (Auer et al. 2002), counting the
  prior as two pulls of each arm.
- ``thompson``: Thompson sampling, the argmax of one draw from each arm's posterior.
- ``bayes_optimal``: the Bayes-optimal policy for the prior and the horizon ``n``, by
  dynamic programming over posteriors (what the RL² paper approximates with Gittins
  indices); feasible for small ``k`` and ``n`` only.

``epsilon`` and ``c`` were tuned on train tasks, as RL² tuned its baselines per setting; the
defaults are the best values at k=5, n=100 (see the configs).

Ties (e.g. every arm at the start) are broken uniformly at random, except by
``bayes_optimal``, whose choices among equally valuable arms are deterministic.
"""

from __future__ import annotations

import abc
import bisect
import dataclasses
import functools
import math
import sys
from typing import Any, ClassVar

import numpy as np

from metarl.core.seeding import policy_rng
from metarl.envs.bandit import BanditFamily
from metarl.rl.agent import TrialAgent, TrialConfig
from metarl.rl.rollout import TrialPolicy

# --------------------------------------------------------------------------- policies


class CountsPolicy(abc.ABC):
    """A :class:`~metarl.rl.rollout.TrialPolicy` that keeps per-arm success/failure counts.

    Subclasses implement :meth:`act` from ``self.successes`` and ``self.failures``.
    """

    def __init__(self, k: int, rng: np.random.Generator):
        self.k = k
        self.rng = rng
        self.successes = np.zeros((0, k))
        self.failures = np.zeros((0, k))

    def begin_trial(self, num_envs: int) -> None:
        self.successes = np.zeros((num_envs, self.k))
        self.failures = np.zeros((num_envs, self.k))

    @property
    def num_envs(self) -> int:
        return len(self.successes)

    def posterior_mean(self) -> np.ndarray:
        """``(s + 1) / (s + f + 2)``: each arm's mean under its ``Beta(s + 1, f + 1)`` posterior."""
        return (self.successes + 1.0) / (self.successes + self.failures + 2.0)

    def argmax_random_ties(self, values: np.ndarray) -> np.ndarray:
        """Per row, an index of the maximum, uniformly at random among exact ties."""
        ties = values == values.max(axis=1, keepdims=True)
        return np.argmax(np.where(ties, self.rng.random(values.shape), -1.0), axis=1)

    @abc.abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Arms to pull in every sub-env."""

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        rows = np.arange(self.num_envs)
        arms = np.asarray(actions, dtype=np.int64)
        counted = active.astype(np.float64)  # sub-envs past their trial learn nothing
        self.successes[rows, arms] += rewards * counted
        self.failures[rows, arms] += (1.0 - rewards) * counted


class GreedyPolicy(CountsPolicy):
    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.argmax_random_ties(self.posterior_mean())


class EpsilonGreedyPolicy(CountsPolicy):
    def __init__(self, k: int, rng: np.random.Generator, epsilon: float):
        super().__init__(k, rng)
        self.epsilon = epsilon

    def act(self, obs: np.ndarray) -> np.ndarray:
        greedy = self.argmax_random_ties(self.posterior_mean())
        # Both draws are made every step, so the random stream does not depend on outcomes.
        explore = self.rng.random(self.num_envs) < self.epsilon
        return np.where(explore, self.rng.integers(0, self.k, size=self.num_envs), greedy)


class UCB1Policy(CountsPolicy):
    def __init__(self, k: int, rng: np.random.Generator, c: float):
        super().__init__(k, rng)
        self.c = c

    def act(self, obs: np.ndarray) -> np.ndarray:
        # The prior counts as two pulls per arm (one success, one failure), so n_i >= 2,
        # t = sum_i n_i >= 2k and the bonus is finite from the first pull.
        pulls = self.successes + self.failures + 2.0
        total = pulls.sum(axis=1, keepdims=True)
        index = self.posterior_mean() + self.c * np.sqrt(2.0 * np.log(total) / pulls)
        return self.argmax_random_ties(index)


class ThompsonPolicy(CountsPolicy):
    def act(self, obs: np.ndarray) -> np.ndarray:
        # Continuous draws: ties have probability zero.
        return np.argmax(self.rng.beta(self.successes + 1.0, self.failures + 1.0), axis=1)


# --------------------------------------------------------------------------- Bayes-optimal DP

DEFAULT_MAX_STATES = 5_000_000
"""Largest DP the Bayes-optimal policy attempts by default: under a minute and about 1 GB.
Measured on one core of a shared 2-core machine (load average ~2): k=5, n=29 (4.8M states)
35 s and 1.1 GB; k=2, n=122 (4.8M) 44 s and 1.2 GB; k=30, n=23 (3.8M) 29 s and 1.0 GB."""


def bayes_optimal_num_states(k: int, n: int, cap: float = math.inf) -> float:
    """The number of states at which the Bayes-optimal DP decides, for ``k`` arms and ``n`` pulls.

    A state is a multiset of ``k`` per-arm pairs ``(s, f)`` (arms are exchangeable under
    the prior) with ``sum(s + f) < n``. Counted by a generating function over the pull
    count ``w = s + f`` of an arm: there are ``w + 1`` pairs of count ``w``, so
    ``comb(w + i, i)`` multisets of ``i`` of them; the arms never pulled fill the rest.
    The count stops early, at some number above ``cap``, once it exceeds ``cap``.
    """
    most = min(k, n - 1)  # arms pulled at least once
    # ways[j, t]: multisets of j pulled arms with t pulls in all, over the counts w seen so far.
    ways = np.zeros((most + 1, n))
    ways[0, 0] = 1.0
    for w in range(1, n):
        new = ways.copy()
        for j in range(1, most + 1):
            for i in range(1, min(j, (n - 1) // w) + 1):
                new[j, i * w :] += ways[j - i, : n - i * w] * math.comb(w + i, i)
        ways = new
        if ways.sum() > cap:
            break
    return float(ways.sum())


def _check_size(k: int, n: int, max_states: int) -> None:
    if bayes_optimal_num_states(k, n, cap=max_states) > max_states:
        lo, hi = 1, n  # the largest feasible horizon for k arms: the count grows with n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if bayes_optimal_num_states(k, mid, cap=max_states) <= max_states else (lo, mid - 1)
        hint = (
            f"with k={k} arms, n<={lo} fits"
            if bayes_optimal_num_states(k, lo, cap=max_states) <= max_states
            else "use fewer arms"
        )
        raise ValueError(
            f"bayes_optimal: k={k} arms and n={n} pulls give more posterior states than the limit "
            f"max_states={max_states:,} (about 8 µs and 250 bytes each): {hint}; or raise --max-states, "
            f"or use ucb1 or thompson, which scale to any size."
        )


@functools.lru_cache(maxsize=2)  # a table near the state limit takes about 1 GB
def _solve(k: int, n: int) -> tuple[float, dict[tuple[int, ...], int]]:
    """Bellman recursion over canonical posterior states; returns (value at the start, policy).

    An arm's posterior is coded as ``code = s * (n + 1) + f``; a state is the sorted tuple of
    the codes of the arms pulled so far (the ``k - len(state)`` others have code 0, so a
    key never holds more than ``n`` codes, however many arms there are).
    ``V(state) = max_i p_i (1 + V(state | i succeeded)) + (1 - p_i) V(state | i failed)``
    with ``p_i = (s_i + 1) / (s_i + f_i + 2)`` and ``V = 0`` after ``n`` pulls. The policy
    maps each state to the code of the best arm; arms with the same code are
    interchangeable, so each distinct code is tried once.
    """
    stride = n + 1
    success, failure = stride, 1  # code increments
    prob = [(c // stride + 1) / (c // stride + c % stride + 2) for c in range(stride * stride)]
    values: dict[tuple[int, ...], float] = {}
    policy: dict[tuple[int, ...], int] = {}

    def value(state: tuple[int, ...], pulls: int) -> float:
        cached = values.get(state)
        if cached is not None:
            return cached
        best_value, best_code = -1.0, -1
        last = pulls + 1 == n
        # (position, code) of each distinct arm posterior; position None: an unpulled arm.
        choices: list[tuple[int | None, int]] = [(None, 0)] if len(state) < k else []
        choices += [(i, c) for i, c in enumerate(state) if i == 0 or c != state[i - 1]]
        for i, code in choices:
            p = prob[code]
            if last:
                v = p
            else:
                after_success = list(state) if i is None else list(state[:i] + state[i + 1 :])
                after_failure = after_success.copy()
                bisect.insort(after_success, code + success)
                bisect.insort(after_failure, code + failure)
                v = p * (1.0 + value(tuple(after_success), pulls + 1)) + (1.0 - p) * value(
                    tuple(after_failure), pulls + 1
                )
            if v > best_value:
                best_value, best_code = v, code
        values[state] = best_value
        policy[state] = best_code
        return best_value

    # The recursion is n calls deep; only k=1 reaches Python's default limit within the
    # state guard. Python-to-Python calls do not grow the C stack (CPython >= 3.11).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, n + 100))
    try:
        root = value((), 0)
    finally:
        sys.setrecursionlimit(limit)
    return root, policy


def bayes_optimal_value(k: int, n: int, max_states: int = DEFAULT_MAX_STATES) -> float:
    """Expected total reward of the Bayes-optimal policy over ``n`` pulls of a ``k``-armed
    bandit with ``p_i ~ U[0, 1]``: the Bayes-optimal policy's score on the train/test split.

    Raises:
        ValueError: if the DP would need more than ``max_states`` states.
    """
    if k < 1 or n < 1:
        raise ValueError(f"k and n must be >= 1, got k={k}, n={n}")
    _check_size(k, n, max_states)
    return _solve(k, n)[0]


class BayesOptimalPolicy(CountsPolicy):
    def __init__(self, k: int, n: int, rng: np.random.Generator):
        super().__init__(k, rng)
        self.stride = n + 1
        self.table = _solve(k, n)[1]

    def act(self, obs: np.ndarray) -> np.ndarray:
        codes = (self.successes * self.stride + self.failures).astype(np.int64)
        states = np.sort(codes, axis=1)
        unpulled = (codes == 0).sum(axis=1).tolist()  # their zeros lead each sorted row
        # One dict lookup per sub-env: the only Python loop over sub-envs in this module,
        # negligible next to the DP that built the table (itself a Python loop per state).
        keys = (tuple(row[z:]) for row, z in zip(states.tolist(), unpulled, strict=True))
        best = np.fromiter((self.table[key] for key in keys), np.int64, count=len(states))
        return np.argmax(codes == best[:, None], axis=1)  # the first arm in that posterior state


# --------------------------------------------------------------------------- configs and agents


@dataclasses.dataclass(frozen=True)
class GreedyConfig(TrialConfig):
    """Greedy has no settings."""


@dataclasses.dataclass(frozen=True)
class EpsilonGreedyConfig(TrialConfig):
    """Settings of epsilon-greedy."""

    epsilon: float = dataclasses.field(
        default=0.0,
        metadata={
            "help": "probability of a uniformly random arm; 0 (plain greedy) was best on train tasks at "
            "k=5 and k=10 with n=10 and n=100: the Beta(1, 1) start already explores"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {self.epsilon}")


@dataclasses.dataclass(frozen=True)
class UCB1Config(TrialConfig):
    """Settings of UCB1."""

    c: float = dataclasses.field(
        default=0.2,
        metadata={
            "help": "scale of the exploration bonus c * sqrt(2 ln t / n_i); 1 is Auer et al.'s UCB1, "
            "0.2 was best on train tasks at k=5 and k=10 with n=100 (0.05 at k=5, n=10)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.c < 0.0:
            raise ValueError(f"c must be >= 0, got {self.c}")


@dataclasses.dataclass(frozen=True)
class ThompsonConfig(TrialConfig):
    """Thompson sampling has no settings (the Beta(1, 1) prior matches the family's)."""


@dataclasses.dataclass(frozen=True)
class BayesOptimalConfig(TrialConfig):
    """Settings of the Bayes-optimal policy."""

    max_states: int = dataclasses.field(
        default=DEFAULT_MAX_STATES,
        metadata={"help": "refuse (k, n) whose DP has more posterior states than this (5M: ~40 s, ~1 GB)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_states < 1:
            raise ValueError(f"max_states must be >= 1, got {self.max_states}")


class BanditAgent(TrialAgent):
    """Base of the bandit baselines: refuses any family but :class:`~metarl.envs.bandit.BanditFamily`."""

    kind: ClassVar[str] = "rl"
    learns: ClassVar[bool] = False

    def __init__(self, config: Any, family: Any, seed: int = 0, device: Any = "cpu"):
        super().__init__(config, family, seed=seed, device=device)
        if not isinstance(family, BanditFamily):
            raise ValueError(
                f"--algo {self.name} works only on Bernoulli bandit families (metarl/Bandit-v0), "
                f"not {type(family).__name__}; use --algo random for other RL families"
            )
        self.k = family.k

    def trial_policy(self, seed: int) -> TrialPolicy:
        return self.make_policy(policy_rng(seed))

    @abc.abstractmethod
    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        """The policy that acts in evaluation trials, drawing from ``rng``."""


class GreedyAgent(BanditAgent):
    """Pull the arm of highest posterior mean."""

    name: ClassVar[str] = "greedy"
    config_class: ClassVar[type] = GreedyConfig

    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        return GreedyPolicy(self.k, rng)


class EpsilonGreedyAgent(BanditAgent):
    """Greedy, but a uniformly random arm with probability epsilon."""

    name: ClassVar[str] = "epsilon_greedy"
    config_class: ClassVar[type] = EpsilonGreedyConfig
    config: EpsilonGreedyConfig

    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        return EpsilonGreedyPolicy(self.k, rng, self.config.epsilon)


class UCB1Agent(BanditAgent):
    """UCB1 with Beta(1, 1) pseudo-counts and a tunable bonus scale."""

    name: ClassVar[str] = "ucb1"
    config_class: ClassVar[type] = UCB1Config
    config: UCB1Config

    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        return UCB1Policy(self.k, rng, self.config.c)


class ThompsonAgent(BanditAgent):
    """Thompson sampling with the Beta(1, 1) prior."""

    name: ClassVar[str] = "thompson"
    config_class: ClassVar[type] = ThompsonConfig

    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        return ThompsonPolicy(self.k, rng)


class BayesOptimalAgent(BanditAgent):
    """The Bayes-optimal policy for the U[0, 1] prior, by dynamic programming."""

    name: ClassVar[str] = "bayes_optimal"
    config_class: ClassVar[type] = BayesOptimalConfig

    def __init__(self, config: BayesOptimalConfig, family: Any, seed: int = 0, device: Any = "cpu"):
        super().__init__(config, family, seed=seed, device=device)
        self.horizon = self.episodes_per_trial()
        _check_size(self.k, self.horizon, config.max_states)  # fail before any work, not mid-evaluation

    def make_policy(self, rng: np.random.Generator) -> CountsPolicy:
        return BayesOptimalPolicy(self.k, self.horizon, rng)
