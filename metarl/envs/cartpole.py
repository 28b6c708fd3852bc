"""Cart-pole balancing with varied physics (Gymnasium's ``CartPole-v1`` equations)."""

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

GRAVITY = 9.8
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
STATE_VARS = ("x", "x_dot", "theta", "theta_dot")

# Gymnasium's CartPole-v1 physics; tasks scale each parameter.
DEFAULTS: dict[str, float] = {"pole_length": 1.0, "pole_mass": 0.1, "cart_mass": 1.0, "force_mag": 10.0}
TRAIN_SCALE: tuple[float, float] = (0.5, 1.5)
OOD_SCALES: tuple[tuple[float, float], ...] = ((0.25, 0.5), (1.5, 2.0))


@dataclasses.dataclass(frozen=True)
class CartPoleTask(Task):
    """One cart-pole's physics and the half-width of its uniform start distribution.

    ``pole_length`` is the pole's full length (Gymnasium's ``length`` is half of it).
    """

    pole_length: float
    pole_mass: float
    cart_mass: float
    force_mag: float
    init_bound: float = 0.05


@dataclasses.dataclass(frozen=True)
class CartPoleFamily(Episodic, ArrayRLFamily[CartPoleTask]):
    """Balance a pole on a cart, with a different cart-pole in each task.

    ## Description
    Gymnasium's ``CartPole-v1`` (same equations of Florian 2005, explicit Euler at
    ``tau = 0.02``, gravity 9.8, same thresholds) with the pole's length and mass, the
    cart's mass and the push force set by the task. With the default physics (length 1,
    pole mass 0.1, cart mass 1, force 10) it is ``CartPole-v1`` step for step.

    ## Action Space
    ``Discrete(2)``: push the cart left (0) or right (1) with ``force_mag``.

    ## Observation Space
    ``Box(float32)`` of shape ``(4,)``: cart position (within ``±4.8``), cart velocity,
    pole angle (within ``±0.419`` rad), pole angular velocity, as in Gymnasium. The
    physics is not observed.

    ## Rewards
    +1 for every step, including the one on which the pole falls (as in Gymnasium).

    ## Starting State
    Every state variable ``~ U[-init_bound, init_bound]``; the task sets the bound,
    Gymnasium's 0.05 in every split.

    ## Episode End
    Terminated when the pole leans more than 12° or the cart leaves ``[-2.4, 2.4]``;
    truncated after ``horizon`` steps (default 200, ``CartPole-v0``'s limit: enough to
    tell the physics apart, and short enough for several episodes per trial). A trial is
    ``n`` episodes.

    ## Arguments
    ``horizon`` (steps per episode, default 200), ``n`` (episodes per trial, default 2).

    ## Task distribution
    Each parameter is its Gymnasium default times an independent ``U[0.5, 1.5]`` factor:
    pole length ``U[0.5, 1.5]``, pole mass ``U[0.05, 0.15]``, cart mass ``U[0.5, 1.5]``,
    force ``U[5, 15]``.

    ## Splits
    - ``train``, ``test``: the distribution above; test tasks come from a disjoint seed
      stream (:func:`metarl.task_rng`).
    - ``ood``: every factor outside the training range, independently ``U[0.25, 0.5]`` or
      ``U[1.5, 2]`` with probability 1/2 each (shorter or longer, lighter or heavier,
      weaker or stronger than anything in training).

    The physics is deterministic, the start state random (``stochastic = True``);
    :meth:`deterministic_tasks` are train tasks with a fixed start (all zeros).
    """

    task_type = CartPoleTask
    array_api: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True
    shifts: ClassVar[dict[str, str]] = {
        "length": "multiply the pole's length by v", "mass": "multiply the pole's mass by v",
        "cart-mass": "multiply the cart's mass by v", "force": "multiply the push's force by v"}
    ood_shift: ClassVar[str] = "every factor x U[0.25, 0.5] or U[1.5, 2] of the default (length, mass, cart-mass, force)"

    def _apply_shift(self, task: CartPoleTask, name: str, value: float | None,
                     rng: np.random.Generator) -> CartPoleTask:
        assert value is not None
        field = {"length": "pole_length", "mass": "pole_mass", "cart-mass": "cart_mass", "force": "force_mag"}[name]
        return scaled(task, value, field)

    @property
    def observation_space(self) -> spaces.Box:
        high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
        return spaces.Box(-high, high, dtype=np.float32)

    @property
    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(2)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[CartPoleTask]:
        defaults = np.array(list(DEFAULTS.values()))
        if split == "ood":
            side = rng.integers(0, len(OOD_SCALES), size=(n, len(DEFAULTS)))
            lo, hi = np.array(OOD_SCALES).T
            scale = rng.uniform(lo[side], hi[side])
        else:
            scale = rng.uniform(*TRAIN_SCALE, size=(n, len(DEFAULTS)))
        return [CartPoleTask(*row.tolist()) for row in scale * defaults]

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[CartPoleTask]:
        tasks = self.sample_tasks(n, "train", rng)
        return [dataclasses.replace(t, init_bound=0.0) for t in tasks]

    def check_task(self, task: CartPoleTask) -> None:
        if not all(math.isfinite(v) for v in task.parameters()):
            raise ValueError(f"every physical parameter must be finite, got {task}")
        if not min(task.pole_length, task.pole_mass, task.cart_mass, task.force_mag) > 0:
            raise ValueError(f"pole length, masses and force must be > 0, got {task}")
        if not 0 <= task.init_bound <= THETA_THRESHOLD:
            raise ValueError(
                f"init_bound must lie in [0, {THETA_THRESHOLD:.3f}] (the fall angle), got {task.init_bound}"
            )

    def task_params(self, tasks: Sequence[CartPoleTask]) -> Params:
        t = np.array(
            [[t.pole_length, t.pole_mass, t.cart_mass, t.force_mag, t.init_bound] for t in tasks],
            dtype=np.float64,
        ).reshape(len(tasks), 5)
        half_length, masspole = t[:, 0] / 2, t[:, 1]
        total_mass = masspole + t[:, 2]
        return {
            "length": half_length,  # Gymnasium's ``length`` is half the pole
            "masspole": masspole,
            "total_mass": total_mass,
            "polemass_length": masspole * half_length,
            "force_mag": t[:, 3].copy(),
            "init_bound": t[:, 4].copy(),
        }

    # One 1-D array per state variable: NumPy gathers and scatters rows of a 2-D array
    # with an index array (resets of some sub-envs) several times slower than 1-D ones.
    def new_state(self, num_envs: int) -> State:
        return {k: np.zeros(num_envs) for k in STATE_VARS}

    def reset_state(self, params: Params, state: State, idx: Index, rng: Generator) -> None:
        bound = params["init_bound"][idx][:, None]
        # One (n, 4) draw: for a single env the same numbers as CartPole-v1's reset.
        start = uniform(rng, -bound, bound, size=(len(bound), 4))
        for j, k in enumerate(STATE_VARS):
            state[k][idx] = start[:, j]

    def step_state(
        self, params: Params, state: State, actions: Array, idx: Index, rng: Generator
    ) -> tuple[Array, Array]:
        x, x_dot, theta, theta_dot = (state[k][idx] for k in STATE_VARS)
        xp = namespace(x)
        length, masspole, total_mass, polemass_length, force_mag = (
            params[k][idx] for k in ("length", "masspole", "total_mass", "polemass_length", "force_mag")
        )
        # CartPole-v1.step's operations in its order.
        force = xp.where(actions.reshape(len(x)) == 1, force_mag, -force_mag)
        costheta = xp.cos(theta)
        sintheta = xp.sin(theta)
        temp = (force + polemass_length * xp.square(theta_dot) * sintheta) / total_mass
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            length * (4.0 / 3.0 - masspole * xp.square(costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        for k, v in zip(STATE_VARS, (x, x_dot, theta, theta_dot), strict=True):
            state[k][idx] = v
        terminated = (x < -X_THRESHOLD) | (x > X_THRESHOLD) | (theta < -THETA_THRESHOLD) | (theta > THETA_THRESHOLD)
        return xp.ones(len(x), dtype=xp.float64, device=device_of(x)), terminated

    def observe(self, params: Params, state: State, idx: Index) -> Array:
        xp = namespace(state["x"])
        return astype(xp.stack([state[k][idx] for k in STATE_VARS], axis=1), xp.float32)
