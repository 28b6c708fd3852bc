"""MuJoCo locomotion task families (Finn et al. 2017, MAML, section 5.3; Rothfuss et al.
2019, ProMP): a running cheetah or ant whose reward or dynamics change from task to task.

These families need the optional extra ``pip install "metarl[mujoco]"`` (Gymnasium's MuJoCo
environments). This module imports without MuJoCo; ``metarl/envs/__init__.py`` registers the
families as requiring ``mujoco``, so without it the registry and the conformance tests do not
list them, and making one says which extra to install.

Each family is a :class:`~metarl.rl.gym_family.GymnasiumFamily` over one of Gymnasium's
MuJoCo environments (``HalfCheetah-v5``, ``Ant-v5``): it keeps the Gymnasium physics,
observation and ``info`` and replaces the reward (or the dynamics) per task. The batched env is
:class:`~metarl.rl.envs.TaskSyncVectorEnv`, a ``SyncVectorEnv`` over the single env with one
task per sub-env: MuJoCo steps in C, so the Python loop over sub-envs costs little next to
the physics (``experiments/bench_mujoco.py`` measures it).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import warnings
from typing import Any, ClassVar

import numpy as np

from metarl.core.seeding import SPLITS
from metarl.core.shift import scaled
from metarl.core.task import Task, TaskT
from metarl.rl.gym_family import GymnasiumFamily

MUJOCO_AVAILABLE: bool = importlib.util.find_spec("mujoco") is not None
"""Whether the ``mujoco`` package is installed. ``find_spec`` rather than ``import mujoco``:
importing MuJoCo costs ~0.4 s. A broken install fails loudly at ``make_env``."""


@dataclasses.dataclass(frozen=True)
class MujocoLocomotionFamily(GymnasiumFamily[TaskT]):
    """Shared fields of the MuJoCo families (not registered itself): Gymnasium's environment,
    its reset noise, and episodes of ``horizon`` (200) steps, ``n`` (2) to a trial."""

    reset_noise_scale: float = dataclasses.field(
        default=0.1,
        metadata={
            "help": "scale of the random perturbation of the start state (Gymnasium's default; 0: deterministic)"
        },
    )

    stochastic: ClassVar[bool] = True
    render_modes: ClassVar[tuple[str, ...]] = ("rgb_array",)
    # A random policy's evaluation costs as much as the trained one's here; score it on demand:
    # python -m metarl.evaluate --algo random --env ID.
    baselines: ClassVar[tuple[str, ...]] = ()
    env_bytes: ClassVar[int] = 2 * 2**20  # measured: 1.4 MiB per HalfCheetah-v5 (MuJoCo 4.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reset_noise_scale < 0:
            raise ValueError(f"reset_noise_scale must be >= 0, got {self.reset_noise_scale}")

    def deterministic_tasks(self, n: int, rng: np.random.Generator) -> list[TaskT]:
        # With reset noise the start state is random, so only a noiseless family is deterministic.
        return self.sample_tasks(n, "train", rng) if self.reset_noise_scale == 0 else []

    def gym_kwargs(self) -> dict[str, Any]:
        return {"reset_noise_scale": self.reset_noise_scale}

    def make_gymnasium_env(self, render_mode: str | None = None) -> Any:
        route_mujoco_warnings()
        return super().make_gymnasium_env(render_mode)


class MujocoWarning(UserWarning):
    """A warning of MuJoCo's C library (e.g. a deprecated attribute in Gymnasium's model files)."""


def route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings through Python's ``warnings`` (shown once per message,
    filterable), unless the user installed a handler of their own. Without this, MuJoCo 4 prints
    a deprecation line for Gymnasium's ``half_cheetah.xml`` at every environment built: a
    thousand lines for a batch of 1,024."""
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(lambda message: warnings.warn(f"MuJoCo: {message}", MujocoWarning, stacklevel=2))


# --- HalfCheetahVel ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HalfCheetahVelTask(Task):
    """One target forward velocity (m/s)."""

    velocity: float


@dataclasses.dataclass(frozen=True)
class HalfCheetahVelFamily(MujocoLocomotionFamily[HalfCheetahVelTask]):
    """A half-cheetah that must run at a target velocity it cannot see (MAML, section 5.3).

    ## Description
    Gymnasium's ``HalfCheetah-v5`` (a planar cheetah, 6 actuated joints) with the reward
    replaced: the target velocity is not observed, so the agent learns it from the rewards.

    ## Action Space
    ``Box(-1, 1, (6,), float32)``: the torques of the six joints (Gymnasium's).

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``: joint positions (without the x position) and
    velocities (Gymnasium's).

    ## Rewards
    ``-|v - v_target| - ctrl_cost_weight * |a|²`` with ``v`` Gymnasium's ``info["x_velocity"]``
    (torso x displacement / dt) and ``ctrl_cost_weight = 0.05`` (the MAML paper's cheetah).

    ## Starting State
    Gymnasium's: the initial pose plus uniform noise on positions and Gaussian noise on
    velocities, both scaled by ``reset_noise_scale`` (0.1).

    ## Episode End
    Never terminates; truncated after ``horizon`` steps (200, as in MAML). A trial is ``n``
    episodes.

    ## Arguments
    ``horizon`` (200), ``n`` (episodes per trial, 2), ``reset_noise_scale`` (0.1),
    ``ctrl_cost_weight`` (0.05).

    ## Task distribution
    ``v_target ~ U[0, 2]`` (MAML).

    ## Splits
    - ``train``, ``test``: ``v_target ~ U[0, 2]``; test tasks come from a disjoint seed stream.
    - ``ood``: ``v_target ~ U[2, 3]``, faster than any training target.
    """

    ctrl_cost_weight: float = dataclasses.field(default=0.05, metadata={"help": "weight of the control cost |a|²"})

    task_type = HalfCheetahVelTask
    gym_id: ClassVar[str] = "HalfCheetah-v5"
    shifts: ClassVar[dict[str, str]] = {"velocity": "set the target velocity to v (training: 0..2)"}
    ood_shift: ClassVar[str] = "velocity:2..3"

    def _apply_shift(self, task: HalfCheetahVelTask, name: str, value: float | None,
                     rng: np.random.Generator) -> HalfCheetahVelTask:
        assert value is not None
        return HalfCheetahVelTask(value)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[HalfCheetahVelTask]:
        low, high = (2.0, 3.0) if split == "ood" else (0.0, 2.0)
        return [HalfCheetahVelTask(float(v)) for v in rng.uniform(low, high, n)]

    def check_task(self, task: HalfCheetahVelTask) -> None:
        if not math.isfinite(task.velocity):
            raise ValueError(f"velocity must be finite, got {task.velocity}")

    def task_reward(self, task: HalfCheetahVelTask, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        return -abs(float(info["x_velocity"]) - task.velocity) - self.ctrl_cost_weight * float(action @ action)


# --- HalfCheetahDir ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HalfCheetahDirTask(Task):
    """A running direction (+1 forward, -1 backward) and the split it was drawn for.

    ``split`` is a label only (it changes neither dynamics nor reward): with two directions,
    it is what keeps train and test tasks distinct values.
    """

    direction: int
    split: str = "train"


@dataclasses.dataclass(frozen=True)
class HalfCheetahDirFamily(MujocoLocomotionFamily[HalfCheetahDirTask]):
    """A half-cheetah that must run forward or backward, without seeing which (MAML, 5.3).

    ## Description
    Gymnasium's ``HalfCheetah-v5`` with the reward replaced by the signed forward velocity.

    ## Action Space
    ``Box(-1, 1, (6,), float32)`` (Gymnasium's).

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)`` (Gymnasium's; the direction is not observed).

    ## Rewards
    ``direction * v - ctrl_cost_weight * |a|²``, ``v`` = ``info["x_velocity"]``,
    ``ctrl_cost_weight = 0.05``.

    ## Starting State
    Gymnasium's, with noise scaled by ``reset_noise_scale`` (0.1).

    ## Episode End
    Never terminates; truncated after ``horizon`` steps (200). A trial is ``n`` episodes.

    ## Arguments
    ``horizon`` (200), ``n`` (2), ``reset_noise_scale`` (0.1), ``ctrl_cost_weight`` (0.05).

    ## Task distribution
    ``direction`` is +1 or -1 with probability 1/2 each (MAML).

    ## Splits
    There are only two directions, so every split holds both; a task also carries the
    ``split`` it was drawn for, so train and test tasks are distinct values (as the
    conformance suite requires) though a train and a test task of the same direction define
    the same MDP. This is the MAML paper's evaluation: adapt to a direction seen in training.
    - ``train``, ``test``: direction ±1 (labelled ``"train"`` / ``"test"``).
    - ``ood``: direction ±1 as well (labelled ``"ood"``): a binary task has no held-out
      direction. For shifted locomotion goals use ``HalfCheetahVel``'s or ``AntDir``'s ``ood``.
    """

    ctrl_cost_weight: float = dataclasses.field(default=0.05, metadata={"help": "weight of the control cost |a|²"})

    task_type = HalfCheetahDirTask
    ood_shift: ClassVar[str] = "none: two directions leave nothing to hold out (the ood split relabels them)"
    gym_id: ClassVar[str] = "HalfCheetah-v5"

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[HalfCheetahDirTask]:
        return [HalfCheetahDirTask(int(d), split) for d in rng.choice(np.array([-1, 1]), n)]

    def check_task(self, task: HalfCheetahDirTask) -> None:
        if task.direction not in (-1, 1):
            raise ValueError(f"direction must be +1 or -1, got {task.direction}")
        if task.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {task.split!r}")

    def task_reward(self, task: HalfCheetahDirTask, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        return task.direction * float(info["x_velocity"]) - self.ctrl_cost_weight * float(action @ action)


# --- AntDir -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AntDirTask(Task):
    """A running direction in the plane, as an angle in radians from the x axis."""

    angle: float


@dataclasses.dataclass(frozen=True)
class AntDirFamily(MujocoLocomotionFamily[AntDirTask]):
    """A quadruped ant that must run in a hidden 2D direction (ProMP's ``AntRandDirec2DEnv``).

    ## Description
    Gymnasium's ``Ant-v5`` with the forward reward replaced by the velocity along the task's
    direction ``u = (cos θ, sin θ)``.

    ## Action Space
    ``Box(-1, 1, (8,), float32)``: the torques of the eight hip and ankle joints (Gymnasium's).

    ## Observation Space
    ``Box(-inf, inf, (105,), float64)``: positions without x and y, velocities and the
    clipped external contact forces (Gymnasium's default; the direction is not observed).

    ## Rewards
    ``u · (v_x, v_y) - 0.5 |a|² - 5e-4 |clip(cfrc_ext, -1, 1)|² + 1[healthy]``: the velocity of
    the torso along ``u`` (Gymnasium's ``info["x_velocity"]``, ``info["y_velocity"]``), minus
    Gymnasium's control and contact costs, plus its healthy reward of 1. These weights are
    ProMP's (Rothfuss et al. 2019) and Gymnasium ``Ant-v5``'s defaults alike; the MAML
    paper's rllab ant used a smaller control cost (0.005) and survival bonus (0.05).

    ## Starting State
    Gymnasium's, with noise scaled by ``reset_noise_scale`` (0.1).

    ## Episode End
    Terminated when the ant is unhealthy (torso height outside ``[0.2, 1.0]`` or a
    non-finite state, Gymnasium's rule); truncated after ``horizon`` steps (200). A trial is
    ``n`` episodes.

    ## Arguments
    ``horizon`` (200), ``n`` (2), ``reset_noise_scale`` (0.1), ``held_out_degrees`` (45).

    ## Task distribution
    ``θ`` uniform on the circle minus a held-out sector ``[0, held_out_degrees)``.

    ## Splits
    - ``train``, ``test``: ``θ ~ U[held_out, 2π)`` (all of ``U[0, 2π)`` when
      ``held_out_degrees=0``); test tasks come from a disjoint seed stream.
    - ``ood``: ``θ ~ U[0, held_out)``: directions no training task pointed to (by default the
      45° counter-clockwise from +x). With ``held_out_degrees=0`` there is no ood split.
    """

    held_out_degrees: float = dataclasses.field(
        default=45.0, metadata={"help": "width of the sector [0, w) of directions held out for the ood split"}
    )

    task_type = AntDirTask
    gym_id: ClassVar[str] = "Ant-v5"
    shifts: ClassVar[dict[str, str]] = {"direction": "set the direction to v degrees counter-clockwise from +x"}
    ood_shift: ClassVar[str] = "direction:0..held_out_degrees (the held-out sector)"

    def _apply_shift(self, task: AntDirTask, name: str, value: float | None, rng: np.random.Generator) -> AntDirTask:
        assert value is not None
        return AntDirTask(math.radians(value) % (2.0 * math.pi))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.held_out_degrees < 360.0:
            raise ValueError(f"held_out_degrees must lie in [0, 360), got {self.held_out_degrees}")

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[AntDirTask]:
        sector = math.radians(self.held_out_degrees)
        if split == "ood":
            if sector == 0.0 and n > 0:
                raise ValueError("held_out_degrees=0 holds out no directions: AntDir has no ood split then")
            angles = rng.uniform(0.0, sector, n)
        else:
            angles = rng.uniform(sector, 2.0 * math.pi, n)
        return [AntDirTask(float(a)) for a in angles]

    def check_task(self, task: AntDirTask) -> None:
        if not math.isfinite(task.angle):
            raise ValueError(f"angle must be finite, got {task.angle}")

    def task_reward(self, task: AntDirTask, action: np.ndarray, base_reward: float, info: dict[str, Any]) -> float:
        forward = math.cos(task.angle) * float(info["x_velocity"]) + math.sin(task.angle) * float(info["y_velocity"])
        return forward + float(info["reward_ctrl"]) + float(info["reward_contact"]) + float(info["reward_survive"])


# --- HalfCheetahDynamics ----------------------------------------------------------------

CHEETAH_BODIES: tuple[str, ...] = ("torso", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
"""The bodies whose masses a :class:`HalfCheetahDynamicsTask` scales, in order."""
CHEETAH_JOINTS: tuple[str, ...] = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
"""The actuated joints whose damping a :class:`HalfCheetahDynamicsTask` scales, in order."""


@dataclasses.dataclass(frozen=True)
class HalfCheetahDynamicsTask(Task):
    """Multipliers of the cheetah's body masses (:data:`CHEETAH_BODIES`) and joint damping
    (:data:`CHEETAH_JOINTS`)."""

    mass_scales: tuple[float, ...]
    damping_scales: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class HalfCheetahDynamicsFamily(MujocoLocomotionFamily[HalfCheetahDynamicsTask]):
    """A half-cheetah running forward with randomised physics (ProMP's ``rand_param_envs``).

    ## Description
    Gymnasium's ``HalfCheetah-v5`` whose body masses and joint damping are scaled per task;
    the reward is unchanged, so the agent must infer the physics from how its body responds.

    ## Action Space
    ``Box(-1, 1, (6,), float32)`` (Gymnasium's).

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)`` (Gymnasium's; the scales are not observed).

    ## Rewards
    Gymnasium's: ``v - 0.1 |a|²`` with ``v`` = ``info["x_velocity"]``.

    ## Starting State
    Gymnasium's, with noise scaled by ``reset_noise_scale`` (0.1). Before every reset the
    model's ``body_mass`` and ``body_inertia`` of body ``i`` are set to their defaults times
    ``mass_scales[i]`` (inertia scales with mass: the geometry is unchanged), the
    ``dof_damping`` of joint ``j`` to its default times ``damping_scales[j]``, and
    ``mj_setConst`` recomputes the derived constants. A new task's physics thus take effect
    at the next reset.

    ## Episode End
    Never terminates; truncated after ``horizon`` steps (200). A trial is ``n`` episodes.

    ## Arguments
    ``horizon`` (200), ``n`` (2), ``reset_noise_scale`` (0.1).

    ## Task distribution
    Each of the 7 mass scales (torso, back thigh, shin, foot, front thigh, shin, foot) and
    6 damping scales (the actuated joints, same order) independently ``~ U[0.5, 1.5]``.

    ## Splits
    - ``train``, ``test``: every scale ``~ U[0.5, 1.5]``; test tasks come from a disjoint
      seed stream.
    - ``ood``: every scale independently ``~ U[0.25, 0.5)`` or ``~ U(1.5, 2.0]`` with
      probability 1/2 each: each body and joint is lighter/heavier or less/more damped than
      in any training task.
    """

    task_type = HalfCheetahDynamicsTask
    gym_id: ClassVar[str] = "HalfCheetah-v5"
    shifts: ClassVar[dict[str, str]] = {"mass": "multiply every body's mass scale by v",
                                        "damping": "multiply every joint's damping scale by v"}
    ood_shift: ClassVar[str] = "every scale x U[0.25, 0.5) or U(1.5, 2] instead of U[0.5, 1.5]"

    def _apply_shift(self, task: HalfCheetahDynamicsTask, name: str, value: float | None,
                     rng: np.random.Generator) -> HalfCheetahDynamicsTask:
        assert value is not None
        return scaled(task, value, f"{name}_scales")

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[HalfCheetahDynamicsTask]:
        size = (n, len(CHEETAH_BODIES) + len(CHEETAH_JOINTS))
        if split == "ood":
            low = rng.uniform(0.25, 0.5, size)
            high = 2.0 - rng.uniform(0.0, 0.5, size)  # U(1.5, 2.0]
            scales = np.where(rng.random(size) < 0.5, low, high)
        else:
            scales = rng.uniform(0.5, 1.5, size)
        k = len(CHEETAH_BODIES)
        return [HalfCheetahDynamicsTask(tuple(row[:k].tolist()), tuple(row[k:].tolist())) for row in scales]

    def check_task(self, task: HalfCheetahDynamicsTask) -> None:
        if len(task.mass_scales) != len(CHEETAH_BODIES) or len(task.damping_scales) != len(CHEETAH_JOINTS):
            raise ValueError(
                f"expected {len(CHEETAH_BODIES)} mass scales {CHEETAH_BODIES} and {len(CHEETAH_JOINTS)} damping "
                f"scales {CHEETAH_JOINTS}, got {len(task.mass_scales)} and {len(task.damping_scales)}"
            )
        if not all(math.isfinite(s) and s > 0 for s in (*task.mass_scales, *task.damping_scales)):
            raise ValueError(f"scales must be finite and positive, got {task}")

    def env_defaults(self, env: Any) -> dict[str, np.ndarray]:
        """The bodies and joints the task scales, and copies of their default values."""
        model = env.model
        bodies = np.array([model.body(name).id for name in CHEETAH_BODIES])
        dofs = np.array([model.jnt_dofadr[model.joint(name).id] for name in CHEETAH_JOINTS])
        return {
            "bodies": bodies,
            "dofs": dofs,
            "mass": model.body_mass[bodies].copy(),
            "inertia": model.body_inertia[bodies].copy(),
            "damping": model.dof_damping[dofs].copy(),
        }

    def apply_task(self, env: Any, task: HalfCheetahDynamicsTask, defaults: dict[str, np.ndarray]) -> None:
        import mujoco

        base, model = defaults, env.model
        mass = np.asarray(task.mass_scales)
        model.body_mass[base["bodies"]] = base["mass"] * mass
        model.body_inertia[base["bodies"]] = base["inertia"] * mass[:, None]
        model.dof_damping[base["dofs"]] = base["damping"] * np.asarray(task.damping_scales)
        # Subtree masses and the constraint solver's inverse weights derive from the masses.
        mujoco.mj_setConst(model, env.data)

