"""2D point navigation to a hidden goal (Finn et al. 2017, MAML, section 5.3)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from metarl.core.task import Task
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.backend import Array, Generator, astype, namespace
from metarl.rl.family import Episodic, horizon_field

MAX_STEP = 0.1
"""Largest move per coordinate and step: actions are clipped to ``[-MAX_STEP, MAX_STEP]``."""
GOAL_RADIUS = 0.01
"""An episode terminates once the point is closer than this to the goal."""
VIEW = 1.1
"""Half-width of the square of the plane that :meth:`Nav2DFamily.render_rgb` draws."""


@dataclasses.dataclass(frozen=True)
class Nav2DTask(Task):
    """One goal position ``(x, y)``."""

    goal: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Nav2DFamily(Episodic, ArrayRLFamily[Nav2DTask]):
    """A point in the plane that must find a goal it cannot see; a trial is ``n`` episodes.

    ## Description
    The point starts at the origin and moves by its (clipped) action every step. The goal
    is not observed: the agent learns where it is from the rewards alone, so the first
    episode of a trial explores and the later ones can head straight there.

    ## Action Space
    ``Box(-0.1, 0.1, (2,), float32)``: the displacement; values outside are clipped.

    ## Observation Space
    ``Box(-inf, inf, (2,), float32)``: the point's position.

    ## Rewards
    Minus the Euclidean distance to the goal after the move.

    ## Starting State
    The origin ``(0, 0)``.

    ## Episode End
    Terminated when the point is within 0.01 of the goal; truncated after ``horizon``
    steps. A trial is ``n`` episodes.

    ## Arguments
    ``horizon`` (steps per episode, default 100), ``n`` (episodes per trial, default 2).

    ## Task distribution
    Goal ``~ U[-0.5, 0.5]²``, as in the MAML paper.

    ## Splits
    - ``train``, ``test``: goal ``~ U[-0.5, 0.5]²``; test tasks come from a disjoint seed
      stream (:func:`metarl.task_rng`).
    - ``ood``: goal uniform on the square ring ``0.5 <= max(|x|, |y|) <= 1``, just outside
      the training square: every ood goal lies farther out than any training goal.

    ``render_mode="rgb_array"`` draws the goal (green), the point (blue) and the
    training square (grey); :func:`plot_trajectories` plots whole rollouts.
    """

    horizon: int = horizon_field(100)

    task_type = Nav2DTask
    array_api: ClassVar[bool] = True
    shifts: ClassVar[dict[str, str]] = {
        "goal-radius": "move the goal along its direction to distance v from the start (training goals: <= 0.71)"}
    ood_shift: ClassVar[str] = "goals on the ring 0.5 <= max(|x|, |y|) <= 1 around the training square"

    def _apply_shift(self, task: Nav2DTask, name: str, value: float | None, rng: np.random.Generator) -> Nav2DTask:
        assert value is not None
        if value < 0:
            raise ValueError(f"shift goal-radius:{value}: a distance must be >= 0")
        x, y = task.goal
        norm = math.hypot(x, y)
        angle = math.atan2(y, x) if norm > 0 else float(rng.uniform(-math.pi, math.pi))
        return Nav2DTask((value * math.cos(angle), value * math.sin(angle)))
    stochastic: ClassVar[bool] = False
    render_modes: ClassVar[tuple[str, ...]] = ("rgb_array",)

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (2,), np.float32)

    @property
    def action_space(self) -> spaces.Box:
        return spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float32)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[Nav2DTask]:
        if split == "ood":
            # Uniform on the ring 0.5 <= |g|_inf <= 1: the square of half-side r has
            # perimeter 8r, so r has density proportional to r (r = sqrt(U[0.25, 1])),
            # and given r the point is uniform on that square's perimeter.
            r = np.sqrt(rng.uniform(0.25, 1.0, n))
            side = rng.integers(0, 4, n)
            along = rng.uniform(-1.0, 1.0, n) * r
            sign = np.where(side % 2 == 0, 1.0, -1.0)
            goals = np.where((side < 2)[:, None], np.stack([sign * r, along], 1), np.stack([along, sign * r], 1))
        else:
            goals = rng.uniform(-0.5, 0.5, size=(n, 2))
        return [Nav2DTask(tuple(g.tolist())) for g in goals]

    def check_task(self, task: Nav2DTask) -> None:
        if len(task.goal) != 2 or not np.all(np.isfinite(task.goal)):
            raise ValueError(f"goal must be two finite numbers (x, y), got {task.goal}")

    def task_params(self, tasks: Sequence[Nav2DTask]) -> Params:
        goals = np.array([t.goal for t in tasks], dtype=np.float64).reshape(len(tasks), 2)
        return {"goal_x": goals[:, 0].copy(), "goal_y": goals[:, 1].copy()}

    # Coordinates are separate 1-D arrays: NumPy gathers and scatters rows of a 2-D array
    # with an index array (resets of some sub-envs) several times slower than 1-D ones.
    def new_state(self, num_envs: int) -> State:
        return {"x": np.zeros(num_envs), "y": np.zeros(num_envs)}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        state["x"][idx] = 0.0
        state["y"][idx] = 0.0

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        xp = namespace(state["x"])
        move = xp.clip(astype(actions, xp.float64).reshape(-1, 2), -MAX_STEP, MAX_STEP)
        x = state["x"][idx] + move[:, 0]
        y = state["y"][idx] + move[:, 1]
        state["x"][idx] = x
        state["y"][idx] = y
        dx, dy = x - params["goal_x"][idx], y - params["goal_y"][idx]
        dist = xp.sqrt(dx * dx + dy * dy)
        return -dist, dist < GOAL_RADIUS

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        xp = namespace(state["x"])
        return astype(xp.stack([state["x"][idx], state["y"][idx]], axis=1), xp.float32)

    def render_rgb(self, params: Params, state: State, size: int = 128) -> np.ndarray:
        """A ``size`` x ``size`` RGB frame of the first sub-env: the plane ``[-1.1, 1.1]²``
        with the training square, the goal and the point (clamped to the frame's edge)."""
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        coords = (np.arange(size) + 0.5) / size * 2 * VIEW - VIEW
        x, y = np.meshgrid(coords, coords[::-1])  # row 0 is the top of the picture (y = +1.1)
        pixel = 2 * VIEW / size
        frame[(np.abs(np.maximum(np.abs(x), np.abs(y)) - 0.5) < pixel / 2)] = (190, 190, 190)
        goal, agent = (params["goal_x"][0], params["goal_y"][0]), (state["x"][0], state["y"][0])
        for point, colour in ((goal, (40, 160, 60)), (agent, (40, 80, 220))):
            px, py = np.clip(point, -VIEW, VIEW)
            frame[(x - px) ** 2 + (y - py) ** 2 < (4 * pixel) ** 2] = colour
        return frame


def plot_trajectories(
    trajectories: Sequence[np.ndarray],
    goals: Sequence[Sequence[float]] | np.ndarray | None = None,
    ax: Any = None,
    title: str | None = None,
    path: str | None = None,
) -> Any:
    """Plot 2D navigation rollouts: one line per trajectory, its goal as a star.

    Args:
        trajectories: positions of each rollout, arrays of shape ``[T, 2]`` (include the
            start at the origin to see the first move).
        goals: the goal of each trajectory (same order), or ``None``.
        ax: a matplotlib ``Axes`` to draw into; a new figure is made if ``None``.
        title: the axes' title.
        path: if given, the figure is saved there (PNG, PDF... from the extension).

    Returns:
        The matplotlib ``Figure``. No ``pyplot`` state is used, so this works headless
        (Agg) and from many threads.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if ax is None:
        fig = Figure(figsize=(4, 4), dpi=100)
        ax = fig.add_subplot()
    fig = ax.figure
    colours = [f"C{i % 10}" for i in range(len(trajectories))]
    ax.add_patch(Rectangle((-0.5, -0.5), 1.0, 1.0, fill=False, edgecolor="0.7", linestyle="--", label="train goals"))
    for i, traj in enumerate(trajectories):
        traj = np.asarray(traj, dtype=np.float64).reshape(-1, 2)
        ax.plot(traj[:, 0], traj[:, 1], "-", color=colours[i], linewidth=1.2)
        ax.plot(traj[-1, 0], traj[-1, 1], "o", color=colours[i], markersize=3)
    if goals is not None:
        for i, g in enumerate(np.asarray(goals, dtype=np.float64).reshape(-1, 2)):
            ax.plot(
                g[0], g[1], "*", color=colours[i % len(colours)] if colours else "k", markersize=12, markeredgecolor="k"
            )
    ax.plot(0.0, 0.0, "k+", markersize=8)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    if title:
        ax.set_title(title)
    if path is not None:
        fig.savefig(path, bbox_inches="tight")
    return fig
