"""Random tabular MDPs (Duan et al. 2016, RL², section 3.2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from metarl.core.task import Task
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.backend import Array, Generator, astype, device_of, namespace, normal, random
from metarl.rl.family import Episodic, horizon_field, trial_field


@dataclasses.dataclass(frozen=True)
class TabularMDPTask(Task):
    """One MDP: mean rewards ``means[s][a]`` and transition probabilities ``transitions[s][a][s']``."""

    means: tuple[tuple[float, ...], ...]
    transitions: tuple[tuple[tuple[float, ...], ...], ...]


def _rows(xp: Any, idx: Index, num: int, device: Any) -> Array:
    """The sub-env numbers ``idx`` selects, as an index array."""
    return xp.arange(num, device=device)[idx] if isinstance(idx, slice) else idx


@dataclasses.dataclass(frozen=True)
class TabularMDPFamily(Episodic, ArrayRLFamily[TabularMDPTask]):
    """Random MDPs with ``num_states`` states and ``num_actions`` actions; a trial is ``n`` episodes.

    ## Description
    Each task is a finite MDP with random transitions and random mean rewards. Every
    episode starts in state 0 and lasts ``horizon`` steps; an agent that remembers what it
    saw in earlier episodes of the trial can plan in the MDP it has learnt.

    ## Action Space
    ``Discrete(num_actions)``.

    ## Observation Space
    ``Box(0, 1, (num_states,), float32)``: the one-hot code of the current state (easier
    for neural agents than an integer).

    ## Rewards
    ``means[s][a] + reward_noise * N(0, 1)`` for the action ``a`` taken in state ``s``,
    drawn before the transition.

    ## Starting State
    State 0.

    ## Episode End
    Never terminated; truncated after ``horizon`` steps. A trial is ``n`` episodes.

    ## Arguments
    ``num_states`` (default 10), ``num_actions`` (default 5), ``horizon`` (steps per
    episode, default 10), ``n`` (episodes per trial, default 10), ``reward_noise``
    (standard deviation of the observed reward around its mean, default 1.0; 0 makes the
    rewards deterministic).

    ## Task distribution
    For each ``(s, a)``: ``transitions[s][a] ~ Dirichlet(1, ..., 1)`` (uniform on the
    simplex) and ``means[s][a] ~ N(1, 1)``, as in the RL² paper.

    ## Splits
    - ``train``, ``test``: the distribution above; test tasks come from a disjoint seed
      stream (:func:`metarl.task_rng`).
    - ``ood``: ``transitions[s][a] ~ Dirichlet(0.1, ..., 0.1)`` (sparse, nearly
      deterministic transitions) and ``means[s][a] ~ N(1, 2²)`` (twice the spread of
      rewards): exploration learnt on smooth MDPs meets MDPs where a few state-action
      pairs matter much more.
    """

    horizon: int = horizon_field(10)
    n: int = trial_field(10)
    num_states: int = dataclasses.field(default=10, metadata={"help": "number of states"})
    num_actions: int = dataclasses.field(default=5, metadata={"help": "number of actions"})
    reward_noise: float = dataclasses.field(
        default=1.0, metadata={"help": "standard deviation of the Gaussian noise on each reward (0: deterministic)"}
    )

    task_type = TabularMDPTask
    array_api: ClassVar[bool] = True
    shifts: ClassVar[dict[str, str]] = {
        "sparsity": "redraw every transition row from Dirichlet(v, ..., v) (0.1: nearly deterministic)",
        "reward-spread": "scale every mean reward's distance from 1 by v"}
    ood_shift: ClassVar[str] = "sparsity:0.1 and reward-spread:2 (sparse transitions, twice the spread of rewards)"
    stochastic: ClassVar[bool] = True
    baselines: ClassVar[tuple[str, ...]] = ("random", "psrl")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_states", "num_actions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.reward_noise < 0:
            raise ValueError(f"reward_noise must be >= 0, got {self.reward_noise}")

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_states,), np.float32)

    @property
    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def _tasks(self, means: np.ndarray, transitions: np.ndarray) -> list[TabularMDPTask]:
        return [TabularMDPTask(m.tolist(), p.tolist()) for m, p in zip(means, transitions, strict=True)]

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[TabularMDPTask]:
        shape = (n, self.num_states, self.num_actions)
        alpha, spread = (0.1, 2.0) if split == "ood" else (1.0, 1.0)
        transitions = rng.dirichlet(np.full(self.num_states, alpha), size=shape)
        means = rng.normal(1.0, spread, size=shape)
        return self._tasks(means, transitions)

    def _apply_shift(self, task: TabularMDPTask, name: str, value: float | None,
                     rng: np.random.Generator) -> TabularMDPTask:
        assert value is not None
        if name == "sparsity":
            if not value > 0:
                raise ValueError(f"shift sparsity:{value}: a Dirichlet concentration must be > 0")
            shape = (self.num_states, self.num_actions)
            return dataclasses.replace(task, transitions=rng.dirichlet(np.full(self.num_states, value), size=shape).tolist())
        means = 1.0 + value * (np.asarray(task.means) - 1.0)
        return dataclasses.replace(task, means=means.tolist())

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[TabularMDPTask]:
        # Deterministic transitions are a task property, but the reward noise belongs to
        # the family: only a noiseless family has tasks with deterministic outcomes.
        if self.reward_noise > 0:
            return []
        shape = (n, self.num_states, self.num_actions)
        transitions = np.eye(self.num_states)[rng.integers(0, self.num_states, size=shape)]
        return self._tasks(rng.normal(1.0, 1.0, size=shape), transitions)

    def check_task(self, task: TabularMDPTask) -> None:
        s, a = self.num_states, self.num_actions
        means = np.asarray(task.means, dtype=np.float64)
        probs = np.asarray(task.transitions, dtype=np.float64)
        if means.shape != (s, a) or probs.shape != (s, a, s):
            raise ValueError(
                f"task has means of shape {means.shape} and transitions of shape {probs.shape}, "
                f"but the family needs {(s, a)} and {(s, a, s)} (num_states={s}, num_actions={a})"
            )
        if not np.isfinite(means).all():
            raise ValueError("every mean reward means[s][a] must be finite")
        if (probs < 0).any() or not np.allclose(probs.sum(axis=-1), 1.0, atol=1e-6):
            raise ValueError("each transitions[s][a] must be a probability vector (non-negative, sums to 1)")

    def task_params(self, tasks: Sequence[TabularMDPTask]) -> Params:
        s, a = self.num_states, self.num_actions
        means = np.array([t.means for t in tasks], dtype=np.float64).reshape(len(tasks), s, a)
        probs = np.array([t.transitions for t in tasks], dtype=np.float64).reshape(len(tasks), s, a, s)
        cdf = np.cumsum(probs, axis=-1)
        # Dividing by the total makes the last entry exactly 1.0, so a uniform draw in
        # [0, 1) always lands in some state despite rounding in the cumulative sum.
        cdf /= cdf[..., -1:]
        return {"means": means, "cdf": cdf}

    def new_state(self, num_envs: int) -> State:
        return {"s": np.zeros(num_envs, dtype=np.int64)}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        state["s"][idx] = 0

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        s = state["s"][idx]
        xp, device = namespace(s), device_of(s)
        a = astype(actions, xp.int64).reshape(len(s))
        num_s, num_a = self.num_states, self.num_actions
        # Flat row numbers into the (task, s, a) tables: np.take on them is several times
        # faster than advanced indexing with three index arrays once the tables (16 MB of
        # CDFs for 4,096 tasks) no longer fit in the cache.
        flat = (_rows(xp, idx, len(state["s"]), device) * num_s + s) * num_a + a
        reward = xp.take(params["means"].reshape(-1), flat)
        if self.reward_noise > 0:
            reward = reward + self.reward_noise * normal(rng, len(s))
        # Inverse-CDF sampling: the next state is the number of CDF entries <= u. A
        # matrix-vector product counts them faster than a sum over the short last axis.
        u = random(rng, len(s))
        below = xp.take(params["cdf"].reshape(-1, num_s), flat, axis=0) <= u[:, None]
        counts = astype(below, xp.float64) @ xp.ones(num_s, dtype=xp.float64, device=device)
        state["s"][idx] = astype(counts, xp.int64)
        return reward, xp.zeros(len(s), dtype=xp.bool, device=device)

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        s = state["s"][idx]
        xp = namespace(s)
        return xp.take(xp.eye(self.num_states, dtype=xp.float32, device=device_of(s)), s, axis=0)
