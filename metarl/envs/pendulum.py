"""Pendulum swing-up with varied physics (Gymnasium's ``Pendulum-v1`` plus damping)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from gymnasium import spaces

from metarl.core.shift import scaled
from metarl.core.task import Task
from metarl.rl.array_family import ArrayRLFamily, Index, Params, State
from metarl.rl.backend import Array, Generator, astype, device_of, namespace, uniform
from metarl.rl.family import Episodic

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05

# Training range of each physical parameter, and the two ood ranges on either side of it.
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "mass": (0.5, 1.5),
    "length": (0.5, 1.5),
    "gravity": (8.0, 12.0),
    "damping": (0.0, 0.1),
}
OOD_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "mass": ((0.25, 0.5), (1.5, 2.0)),
    "length": ((0.25, 0.5), (1.5, 2.0)),
    "gravity": ((5.0, 8.0), (12.0, 15.0)),
    "damping": ((0.1, 0.2),),
}


@dataclasses.dataclass(frozen=True)
class PendulumTask(Task):
    """One pendulum's physics and the half-widths of its uniform start distribution."""

    mass: float
    length: float
    gravity: float
    damping: float
    init_angle: float = math.pi
    init_speed: float = 1.0


def _draw(rng: np.random.Generator, ranges: tuple[tuple[float, float], ...], n: int) -> np.ndarray:
    """``n`` values, each uniform in one of ``ranges`` picked with equal probability."""
    side = rng.integers(0, len(ranges), n)
    lo, hi = np.array(ranges).T
    return rng.uniform(lo[side], hi[side])


@dataclasses.dataclass(frozen=True)
class PendulumFamily(Episodic, ArrayRLFamily[PendulumTask]):
    """Swing a pendulum up and hold it upright, with a different pendulum in each task.

    ## Description
    Gymnasium's ``Pendulum-v1`` (same equations, time step, limits and costs) with the
    mass ``m``, length ``l``, gravity ``g`` and a viscous damping ``b`` set by the task:
    ``θ̈ = 3g / (2l) · sin θ + 3 / (m l²) · (u - b θ̇)``, integrated with semi-implicit
    Euler at ``dt = 0.05``, ``θ̇`` clipped to ``[-8, 8]``. With ``m = l = 1``, ``g = 10``,
    ``b = 0`` it is exactly ``Pendulum-v1``. ``θ = 0`` is upright.

    ## Action Space
    ``Box(-2, 2, (1,), float32)``: the torque; values outside are clipped.

    ## Observation Space
    ``Box([-1, -1, -8], [1, 1, 8], (3,), float32)``: ``cos θ``, ``sin θ``, ``θ̇``. The
    physics is not observed: the agent infers it from how the pendulum responds.

    ## Rewards
    ``-(normalize(θ)² + 0.1 θ̇² + 0.001 u²)`` for the state before the step, where
    ``normalize`` maps angles to ``[-π, π)``.

    ## Starting State
    ``θ ~ U[-init_angle, init_angle]``, ``θ̇ ~ U[-init_speed, init_speed]``; the task
    sets the half-widths, Gymnasium's ``π`` and ``1`` in every split.

    ## Episode End
    Never terminated; truncated after ``horizon`` steps. A trial is ``n`` episodes.

    ## Arguments
    ``horizon`` (steps per episode, default 200), ``n`` (episodes per trial, default 2).

    ## Task distribution
    Independently: mass ``U[0.5, 1.5]``, length ``U[0.5, 1.5]``, gravity ``U[8, 12]``,
    damping ``U[0, 0.1]``.

    ## Splits
    - ``train``, ``test``: the distribution above; test tasks come from a disjoint seed
      stream (:func:`metarl.task_rng`).
    - ``ood``: every parameter outside its training range: mass and length uniform on
      ``[0.25, 0.5]`` or ``[1.5, 2]``, gravity on ``[5, 8]`` or ``[12, 15]`` (each side
      with probability 1/2), damping ``U[0.1, 0.2]``.

    The physics is deterministic, the start state random (``stochastic = True``);
    :meth:`deterministic_tasks` are train tasks with a fixed start (upright, at rest).
    """

    task_type = PendulumTask
    array_api: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True
    shifts: ClassVar[dict[str, str]] = {
        "mass": "multiply the mass by v", "length": "multiply the length by v",
        "gravity": "multiply gravity by v", "damping": "add v to the damping"}
    ood_shift: ClassVar[str] = ("every parameter outside its training range (mass, length x U[0.25, 0.5] or "
                                "U[1.5, 2] of 1, gravity 5-8 or 12-15, damping +0.1..0.2)")

    def _apply_shift(self, task: PendulumTask, name: str, value: float | None,
                     rng: np.random.Generator) -> PendulumTask:
        assert value is not None
        if name == "damping":
            return dataclasses.replace(task, damping=task.damping + value)
        return scaled(task, value, name)

    @property
    def observation_space(self) -> spaces.Box:
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32)

    @property
    def action_space(self) -> spaces.Box:
        return spaces.Box(-MAX_TORQUE, MAX_TORQUE, (1,), np.float32)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[PendulumTask]:
        names = list(TRAIN_RANGES)
        if split == "ood":
            values = np.stack([_draw(rng, OOD_RANGES[k], n) for k in names], axis=1)
        else:
            values = np.stack([rng.uniform(*TRAIN_RANGES[k], n) for k in names], axis=1)
        return [PendulumTask(*row.tolist()) for row in values]

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[PendulumTask]:
        tasks = self.sample_tasks(n, "train", rng)
        return [dataclasses.replace(t, init_angle=0.0, init_speed=0.0) for t in tasks]

    def check_task(self, task: PendulumTask) -> None:
        if not all(math.isfinite(v) for v in task.parameters()):
            raise ValueError(f"every physical parameter must be finite, got {task}")
        if not (task.mass > 0 and task.length > 0 and task.damping >= 0):
            raise ValueError(f"mass and length must be > 0 and damping >= 0, got {task}")
        if not (0 <= task.init_speed <= MAX_SPEED and task.init_angle >= 0):
            raise ValueError(f"init_angle must be >= 0 and init_speed in [0, {MAX_SPEED}], got {task}")

    def task_params(self, tasks: Sequence[PendulumTask]) -> Params:
        names = PendulumTask.parameter_names()
        table = np.array([t.parameters() for t in tasks], dtype=np.float64).reshape(len(tasks), len(names))
        return dict(zip(names, table.T.copy(), strict=True))

    def new_state(self, num_envs: int) -> State:
        return {"th": np.zeros(num_envs), "thdot": np.zeros(num_envs)}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        xp = namespace(state["th"])
        high = xp.stack([params["init_angle"][idx], params["init_speed"][idx]], axis=1)
        # One (n, 2) draw: for a single env the same numbers as Pendulum-v1's reset.
        start = uniform(rng, -high, high)
        state["th"][idx] = start[:, 0]
        state["thdot"][idx] = start[:, 1]

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        th, thdot = state["th"][idx], state["thdot"][idx]
        xp = namespace(th)
        g, m, l, b = (params[k][idx] for k in ("gravity", "mass", "length", "damping"))  # noqa: E741
        # Pendulum-v1.step's operations in its order; the damping torque b·θ̇ is the addition.
        u = xp.clip(actions.reshape(len(th)), -MAX_TORQUE, MAX_TORQUE)
        costs = (((th + math.pi) % (2 * math.pi)) - math.pi) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * l) * xp.sin(th) + 3.0 / (m * l**2) * (u - b * thdot)) * DT
        newthdot = xp.clip(newthdot, -MAX_SPEED, MAX_SPEED)
        state["th"][idx] = th + newthdot * DT
        state["thdot"][idx] = newthdot
        return -costs, xp.zeros(len(th), dtype=xp.bool, device=device_of(th))

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        th, thdot = state["th"][idx], state["thdot"][idx]
        xp = namespace(th)
        return astype(xp.stack([xp.cos(th), xp.sin(th), thdot], axis=1), xp.float32)
