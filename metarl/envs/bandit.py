"""Bernoulli multi-armed bandits (Duan et al. 2016, RL², section 3.1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from metarl.core.task import Task
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.backend import Array, Generator, astype, device_of, namespace, random


@dataclasses.dataclass(frozen=True)
class BanditTask(Task):
    """One bandit: the success probability of each arm."""

    probs: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class BanditFamily(ArrayRLFamily[BanditTask]):
    """Bernoulli bandits with ``k`` arms; a trial is ``n`` pulls of one bandit.

    ## Description
    Each task is a bandit whose arm ``i`` pays 1 with probability ``p_i`` and 0
    otherwise. An agent that learns from its pulls within a trial can find the best arm.

    ## Action Space
    ``Discrete(k)``: the arm to pull.

    ## Observation Space
    ``Box(0, 1, (1,), float32)``, always ``[0.0]``: everything an agent can learn comes
    from its rewards.

    ## Rewards
    1 with probability ``p_action``, else 0.

    ## Starting State
    No state: every pull starts afresh.

    ## Episode End
    One episode is one pull (terminated after every step). A trial is ``n`` episodes.

    ## Arguments
    ``k`` (arms, default 5), ``n`` (pulls per trial, default 100).

    ## Task distribution
    ``p_i ~ U[0, 1]`` independently for each arm (the RL² paper's prior).

    ## Splits
    - ``train``, ``test``: ``p_i ~ U[0, 1]``; test tasks come from a disjoint seed stream
      (:func:`metarl.task_rng`).
    - ``ood``: ``p_i ~ Beta(0.5, 0.5)``, a U-shaped prior with more near-certain arms
      than training ever showed; a prior-aware policy tuned for ``U[0, 1]`` is
      misspecified there.
    """

    k: int = dataclasses.field(default=5, metadata={"help": "number of arms"})
    n: int = dataclasses.field(default=100, metadata={"help": "pulls per trial (one pull is one episode)"})

    task_type = BanditTask
    array_api: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True
    baselines: ClassVar[tuple[str, ...]] = ("random", "ucb1", "thompson")
    shifts: ClassVar[dict[str, str]] = {
        "prior": "redraw every arm's probability from Beta(v, v) (0.5: the ood split's U-shaped prior)"}
    ood_shift: ClassVar[str] = "prior:0.5"
    # GAE lambda 0.95 beat lambda 1 in three paired runs at 10M steps (k=5, n=100; RESULTS.md,
    # "RL² ablation"): once the value head sees the elapsed time, bootstrapping no longer collapses.
    recommended: ClassVar[dict[str, dict[str, Any]]] = {"rl2": {"gae_lambda": 0.95}}

    def _apply_shift(self, task: BanditTask, name: str, value: float | None, rng: np.random.Generator) -> BanditTask:
        assert value is not None
        if not value > 0:
            raise ValueError(f"shift prior:{value}: the Beta prior's parameter must be > 0")
        return BanditTask(tuple(rng.beta(value, value, self.k).tolist()))

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k (number of arms) must be >= 1, got {self.k}")
        if self.n < 1:
            raise ValueError(f"n (pulls per trial) must be >= 1, got {self.n}")

    @property
    def episodes_per_trial(self) -> int:
        return self.n

    @property
    def max_episode_steps(self) -> int:
        return 1

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), np.float32)

    @property
    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.k)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[BanditTask]:
        if split == "ood":
            probs = rng.beta(0.5, 0.5, size=(n, self.k))
        else:
            probs = rng.uniform(0.0, 1.0, size=(n, self.k))
        return [BanditTask(tuple(row.tolist())) for row in probs]

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[BanditTask]:
        return [BanditTask(tuple(row.tolist())) for row in rng.integers(0, 2, size=(n, self.k)).astype(float)]

    def check_task(self, task: BanditTask) -> None:
        if len(task.probs) != self.k:
            raise ValueError(f"task has {len(task.probs)} arms but the family has k={self.k}")
        if not all(0.0 <= p <= 1.0 for p in task.probs):
            raise ValueError(f"arm probabilities must lie in [0, 1], got {task.probs}")

    def task_params(self, tasks: Sequence[BanditTask]) -> Params:
        return {"probs": np.array([t.probs for t in tasks], dtype=np.float64).reshape(len(tasks), self.k)}

    def new_state(self, num_envs: int) -> State:
        return {}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        pass  # a bandit has no state between pulls

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        probs = params["probs"][idx]
        xp, n, device = namespace(probs), len(probs), device_of(probs)
        p = probs[xp.arange(n, device=device), astype(actions, xp.int64)]
        reward = astype(random(rng, n) < p, xp.float64)
        return reward, xp.ones(n, dtype=xp.bool, device=device)

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        probs = params["probs"][idx]
        xp = namespace(probs)
        return xp.zeros((len(probs), 1), dtype=xp.float32, device=device_of(probs))
