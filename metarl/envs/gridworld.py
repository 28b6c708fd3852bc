"""A gridworld with a hidden goal cell (Zintgraf et al. 2020, VariBAD, section 5.1)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from metarl.core.task import Task
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.backend import Array, Generator, astype, constant, device_of, namespace
from metarl.rl.family import Episodic, horizon_field, trial_field

GOAL_REWARD = 1.0
STEP_REWARD = -0.1
MOVES = np.array([[0, 1], [0, -1], [-1, 0], [1, 0], [0, 0]], dtype=np.int64)
"""Displacement ``(dx, dy)`` of each action: up, down, left, right, stay."""
MOVES_X, MOVES_Y = MOVES[:, 0].copy(), MOVES[:, 1].copy()
_STEP_REWARD = np.array(STEP_REWARD)


@dataclasses.dataclass(frozen=True)
class GridTask(Task):
    """One goal cell ``(x, y)``."""

    goal: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class HiddenGoalGridFamily(Episodic, ArrayRLFamily[GridTask]):
    """Find a hidden goal cell in a ``size`` x ``size`` grid, then return to it; a trial is ``n`` episodes.

    ## Description
    The agent starts in the corner ``(0, 0)`` of the grid; one other cell is the goal,
    which the agent does not see. A Bayes-optimal agent searches the cells it has not
    ruled out during the first episode and walks straight back to the goal in later
    ones, so exploration followed by exploitation is easy to see in its returns.

    ## Action Space
    ``Discrete(5)``: up (``y + 1``), down, left (``x - 1``), right, stay. Moving into the
    boundary leaves the agent where it is.

    ## Observation Space
    ``Box(0, 1, (2,), float32)``: the agent's cell ``(x, y) / (size - 1)``.

    ## Rewards
    +1 for each step that ends on the goal cell, -0.1 for every other step.

    ## Starting State
    The corner cell ``(0, 0)``, never a goal.

    ## Episode End
    Never terminated (the agent may stay on the goal and keep collecting); truncated
    after ``horizon`` steps. A trial is ``n`` episodes.

    ## Arguments
    ``size`` (grid side, default 5, at least 3), ``horizon`` (steps per episode,
    default 15), ``n`` (episodes per trial, default 4).

    ## Task distribution
    The goal is uniform over the cells of its split (below).

    ## Splits
    With only ``size²`` goals, independent draws for train and test would share cells,
    so the splits partition the cells by construction. Let ``d = x + y`` be a cell's
    distance from the start and ``D = ceil(1.5 (size - 1))`` (6 for a 5 x 5 grid):
    - ``train``: cells with ``1 <= d < D`` in even columns (``x = 0, 2, 4``): 10 cells;
    - ``test``: cells with ``1 <= d < D`` in odd columns (``x = 1, 3``): 8 cells with
      the same spread of distances as the training cells; a meta-learner must reach
      goal cells it never saw in training;
    - ``ood``: the far corner, ``d >= D``: 6 cells, farther from the start than any train
      or test goal (searching them needs most of the 15-step horizon).
    """

    horizon: int = horizon_field(15)
    n: int = trial_field(4)
    size: int = dataclasses.field(default=5, metadata={"help": "side of the square grid"})

    ood_shift: ClassVar[str] = "goal cells at distance >= D from the start (the far corner); no parametric shift"

    task_type = GridTask
    array_api: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size < 3:
            raise ValueError(f"size must be >= 3 so that every split has goal cells, got {self.size}")

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), np.float32)

    @property
    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(len(MOVES))

    def goal_cells(self, split: str) -> np.ndarray:
        """The ``(x, y)`` goal cells of ``split``, an int array of shape ``[cells, 2]``."""
        x, y = np.meshgrid(np.arange(self.size), np.arange(self.size), indexing="ij")
        cells = np.stack([x.ravel(), y.ravel()], axis=1)
        d = cells.sum(axis=1)
        far = math.ceil(1.5 * (self.size - 1))
        if split == "ood":
            mask = d >= far
        else:
            mask = (d >= 1) & (d < far) & (cells[:, 0] % 2 == (0 if split == "train" else 1))
        return cells[mask]

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[GridTask]:
        cells = self.goal_cells(split)
        return [GridTask(tuple(c)) for c in cells[rng.integers(0, len(cells), n)].tolist()]

    def check_task(self, task: GridTask) -> None:
        if len(task.goal) != 2 or not all(isinstance(v, int) and 0 <= v < self.size for v in task.goal):
            raise ValueError(f"goal must be two integers in [0, {self.size}), got {task.goal}")
        if task.goal == (0, 0):
            raise ValueError("the goal cannot be the start cell (0, 0)")

    def task_params(self, tasks: Sequence[GridTask]) -> Params:
        goals = np.array([t.goal for t in tasks], dtype=np.int64).reshape(len(tasks), 2)
        return {"goal_x": goals[:, 0].copy(), "goal_y": goals[:, 1].copy()}

    # Coordinates are separate 1-D arrays: NumPy gathers and scatters rows of a 2-D array
    # with an index array (resets of some sub-envs) several times slower than 1-D ones.
    def new_state(self, num_envs: int) -> State:
        return {"x": np.zeros(num_envs, dtype=np.int64), "y": np.zeros(num_envs, dtype=np.int64)}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        state["x"][idx] = 0
        state["y"][idx] = 0

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        x, y = state["x"][idx], state["y"][idx]
        xp = namespace(x)
        a = astype(actions, xp.int64).reshape(-1)
        x = xp.clip(x + constant(MOVES_X, x)[a], 0, self.size - 1)
        y = xp.clip(y + constant(MOVES_Y, x)[a], 0, self.size - 1)
        state["x"][idx] = x
        state["y"][idx] = y
        on_goal = (x == params["goal_x"][idx]) & (y == params["goal_y"][idx])
        # A float64 array operand fixes the dtype: torch gives float32 for two Python numbers.
        reward = xp.where(on_goal, GOAL_REWARD, constant(_STEP_REWARD, x))
        return reward, xp.zeros(len(x), dtype=xp.bool, device=device_of(x))

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        xp = namespace(state["x"])
        xy = astype(xp.stack([state["x"][idx], state["y"][idx]], axis=1), xp.float32)
        return xy / (self.size - 1)
