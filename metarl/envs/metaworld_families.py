"""Meta-World task families (Yu et al. 2019; Meta-World+ 2025, library version 3.1.x):
ML1 (one manipulation task, many goal variations) and ML10 (ten training tasks, five
held-out test tasks) on a simulated Sawyer arm.

These families need the optional extra ``pip install "metarl[metaworld]"``. This module
imports without Meta-World; ``metarl/envs/__init__.py`` registers the families as requiring
``metaworld`` and ``mujoco``.

A metarl task is one Meta-World *variation*: an environment name and its ``rand_vec``
(the object and goal positions that Meta-World freezes per task). The variations are
exactly Meta-World's own benchmark tasks (``metaworld.ML1(env_name, seed)``,
``metaworld.ML10(seed)``), generated once per process for the family's ``benchmark_seed``.
The goal is hidden from the observation (Meta-World's ML setting) unless
``observable_goal=True``.

Success: every step's ``info["success"]`` is Meta-World's (1.0 once the task is solved at
that step), and ``info["episode_success"]`` is 1.0 from the first successful step of the
episode on. The success rate of a set of episodes is the mean of ``episode_success`` at
their last steps (Meta-World's rule: an episode succeeds if it reaches success at any step);
report it alongside the return.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import importlib.util
import math
import pickle
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from metarl.core.task import Task
from metarl.rl.envs import TaskEnv, TaskSyncVectorEnv
from metarl.rl.family import Episodic, RLFamily, horizon_field

METAWORLD_AVAILABLE: bool = all(importlib.util.find_spec(m) is not None for m in ("mujoco", "metaworld"))
"""Whether ``metaworld`` is installed. ``find_spec`` because importing Meta-World takes ~1 s."""

WALL_VARIANTS: dict[str, str] = {
    "reach-v3": "reach-wall-v3",
    "push-v3": "push-wall-v3",
    "pick-place-v3": "pick-place-wall-v3",
    "button-press-v3": "button-press-wall-v3",
    "button-press-topdown-v3": "button-press-topdown-wall-v3",
}
"""ML1's default ``ood`` environment: the same task with a wall in the way."""


def _metaworld() -> Any:
    if not METAWORLD_AVAILABLE:
        raise ImportError('Meta-World families need Meta-World: pip install "metarl[metaworld]"')
    import metaworld

    return metaworld


@dataclasses.dataclass(frozen=True)
class MetaWorldTask(Task):
    """One Meta-World variation: the environment's name (e.g. ``"reach-v3"``) and the
    ``rand_vec`` that fixes its object and goal positions."""

    env_name: str
    rand_vec: tuple[float, ...]


@contextlib.contextmanager
def _fast_hand_reset() -> Iterator[None]:
    """Draw Meta-World's variations about 5x faster.

    Meta-World draws each variation with a full ``reset()``, whose ``_reset_hand`` simulates
    50 steps of moving the hand home: ~1 s per environment, 17 s for ML10. The variations
    come from ``np.random`` alone, so one hand step gives the very same ones
    (``tests/test_envs_metaworld.py`` checks this against unpatched Meta-World).
    """
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    original = SawyerXYZEnv._reset_hand
    SawyerXYZEnv._reset_hand = lambda self, steps=50: original(self, steps=1)  # type: ignore[method-assign]
    try:
        yield
    finally:
        SawyerXYZEnv._reset_hand = original  # type: ignore[method-assign]


def _convert(tasks: Sequence[Any]) -> tuple[MetaWorldTask, ...]:
    return tuple(MetaWorldTask(t.env_name, tuple(float(x) for x in pickle.loads(t.data)["rand_vec"])) for t in tasks)


@functools.cache
def benchmark_tasks(benchmark: str, seed: int, env_name: str = "") -> dict[str, tuple[MetaWorldTask, ...]]:
    """Meta-World's ``train_tasks`` and ``test_tasks`` of ``metaworld.ML1(env_name, seed)`` or
    ``metaworld.ML10(seed)`` (``benchmark`` is ``"ML1"`` or ``"ML10"``), cached per process."""
    mw = _metaworld()
    with _fast_hand_reset():
        bench = mw.ML1(env_name, seed=seed) if benchmark == "ML1" else mw.ML10(seed=seed)
    return {"train": _convert(bench.train_tasks), "test": _convert(bench.test_tasks)}


@functools.cache
def custom_tasks(env_names: tuple[str, ...], seed: int) -> tuple[MetaWorldTask, ...]:
    """The 50 variations of each of ``env_names`` that ``metaworld.CustomML`` draws as its
    test tasks for ``seed`` (for ML1's environment: the same as ``ML1(name, seed)``'s train
    tasks), cached per process."""
    mw = _metaworld()
    with _fast_hand_reset():
        return _convert(mw.CustomML([], list(env_names), seed=seed).test_tasks)


@functools.cache
def _spaces(observable_goal: bool) -> tuple[gym.Space, gym.Space]:
    # Every v3 env has the same 39-d observation space but for the goal's bounds (the last
    # three numbers): zeros when the goal is hidden, each env's own goal range otherwise,
    # so an observable goal gets unbounded ones that hold every env's.
    env = _metaworld().env_dict.ALL_V3_ENVIRONMENTS["reach-v3"]()
    obs_space, action_space = env.sawyer_observation_space, env.action_space
    env.close()
    if observable_goal:
        low, high = obs_space.low.copy(), obs_space.high.copy()
        low[-3:], high[-3:] = -np.inf, np.inf
        obs_space = gym.spaces.Box(low, high, dtype=np.float64)
    return obs_space, action_space


class MetaWorldTaskEnv(TaskEnv[MetaWorldTask]):
    """One Meta-World environment that can switch between variations and environments.

    ``reset(options={"task": task})`` switches the task (a plain reset keeps it; ``task``
    reads it). A task takes effect at the next reset, which builds the task's Meta-World
    environment the first time it is needed and reuses it afterwards (ML10's tasks span 15
    environments). Meta-World's reset is deterministic given the task, so ``seed`` only seeds
    :attr:`np_random`. ``info`` is Meta-World's (``success``, ``near_object``, ...) plus
    ``episode_success``.
    """

    family: MetaWorldFamily

    def __init__(self, family: MetaWorldFamily, task: MetaWorldTask | None = None, render_mode: str | None = None):
        super().__init__(family, task, render_mode, render_fps=80)
        self._envs: dict[str, Any] = {}
        self._active: Any = None
        self._elapsed = 0
        self._episode_success = 0.0

    def _env_for(self, env_name: str) -> Any:
        if env_name not in self._envs:
            mw = _metaworld()
            env = mw.env_dict.ALL_V3_ENVIRONMENTS[env_name](render_mode=self.render_mode)
            env.max_path_length = self.family.horizon  # Meta-World refuses to step past it
            self._envs[env_name] = env
        return self._envs[env_name]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.begin_reset(seed, options)
        task = self.task
        env = self._env_for(task.env_name)
        data = {
            "rand_vec": np.array(task.rand_vec, dtype=np.float64),
            "env_cls": type(env),
            "partially_observable": not self.family.observable_goal,
        }
        env.set_task(_metaworld().types.Task(env_name=task.env_name, data=pickle.dumps(data)))
        self._active = env
        obs, info = env.reset()
        self._elapsed = 0
        self._episode_success = 0.0
        return obs, info

    def step(self, action: Any):
        if self._active is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, _, _, info = self._active.step(self.checked_action(action).astype(np.float32))
        self._elapsed += 1
        success = float(info["success"])
        self._episode_success = max(self._episode_success, success)
        info["episode_success"] = self._episode_success
        terminated = self.family.terminate_on_success and success >= 1.0
        truncated = (not terminated) and self._elapsed >= self.family.horizon
        return obs, float(reward), terminated, truncated, info

    def render(self) -> Any:
        return self._active.render() if self.render_mode is not None and self._active is not None else None

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._active = None


@dataclasses.dataclass(frozen=True)
class MetaWorldFamily(Episodic, RLFamily[MetaWorldTask]):
    """Shared fields and plumbing of the Meta-World families (not registered itself)."""

    horizon: int = horizon_field(500, "steps per episode (Meta-World's 500)")
    benchmark_seed: int = dataclasses.field(
        default=0, metadata={"help": "seed of Meta-World's benchmark, which fixes its goal variations"}
    )
    terminate_on_success: bool = dataclasses.field(
        default=False, metadata={"help": "end an episode at its first success (Meta-World's evaluation does)"}
    )
    observable_goal: bool = dataclasses.field(
        default=False, metadata={"help": "show the goal position in the observation (Meta-World's MT setting)"}
    )

    task_type = MetaWorldTask
    stochastic: ClassVar[bool] = False  # Meta-World's reset and physics are deterministic given the task
    baselines: ClassVar[tuple[str, ...]] = ()  # as for MuJoCo locomotion: random costs a full evaluation
    env_bytes: ClassVar[int] = 24 * 2**20  # measured: 20 MiB per ML1 reach-v3 env (Meta-World 3.1.1)
    render_modes: ClassVar[tuple[str, ...]] = ("rgb_array",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.horizon > 500:
            raise ValueError(f"horizon must lie in [1, 500] (Meta-World's limit), got {self.horizon}")

    @property
    def observation_space(self) -> gym.Space:
        """Meta-World's 39-d observation: hand, gripper, two objects, the previous frame, goal."""
        return _spaces(self.observable_goal)[0]

    @property
    def action_space(self) -> gym.Space:
        """``Box(-1, 1, (4,), float32)``: hand displacement and gripper effort."""
        return _spaces(self.observable_goal)[1]

    @abc.abstractmethod
    def tasks_by_split(self) -> dict[str, tuple[MetaWorldTask, ...]]:
        """All of the family's variations, by split."""

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[MetaWorldTask]:
        pool = self.tasks_by_split()[split]
        if not pool:
            raise ValueError(f"{type(self).__name__} has no {split} tasks")
        # Without replacement while the pool lasts: a meta-batch sees distinct variations.
        return [pool[i] for i in rng.choice(len(pool), n, replace=n > len(pool))]

    def check_task(self, task: MetaWorldTask) -> None:
        names = _metaworld().env_dict.ALL_V3_ENVIRONMENTS
        if task.env_name not in names:
            raise ValueError(f"unknown Meta-World environment {task.env_name!r}; known: {', '.join(names)}")
        if not all(math.isfinite(x) for x in task.rand_vec):
            raise ValueError(f"rand_vec must be finite, got {task.rand_vec}")

    def make_env(self, task: MetaWorldTask | None = None, render_mode: str | None = None) -> MetaWorldTaskEnv:
        return MetaWorldTaskEnv(self, task, render_mode=render_mode)

    def make_vec_env(
        self,
        num_envs: int,
        tasks: Sequence[MetaWorldTask] | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> TaskSyncVectorEnv[MetaWorldTask]:
        return TaskSyncVectorEnv(self, num_envs, tasks, autoreset_mode=autoreset_mode)


@dataclasses.dataclass(frozen=True)
class MetaWorldML1Family(MetaWorldFamily):
    """Meta-World ML1: one manipulation task whose object and goal positions vary.

    ## Description
    A Sawyer arm must solve ``env_name`` (default ``reach-v3``: move the gripper to a goal
    point) for goal and object positions it cannot see; it learns them from rewards.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: hand displacement (x, y, z) and gripper effort.

    ## Observation Space
    ``Box((39,), float64)``: hand position, gripper opening, the positions and quaternions
    of up to two objects, the same 18 numbers from the previous step, and the goal position
    (zeros unless ``observable_goal``).

    ## Rewards
    Meta-World's (reward function v2), between 0 and 10 per step. Success (``info["success"]``,
    ``info["episode_success"]``, see the module docstring) is reported alongside.

    ## Starting State
    Meta-World's: the hand at its home position, objects where the variation puts them.
    Deterministic given the task.

    ## Episode End
    Truncated after ``horizon`` steps (500, Meta-World's); terminated at the first success
    only if ``terminate_on_success``. A trial is ``n`` episodes.

    ## Arguments
    ``env_name`` (``reach-v3``), ``ood_env_name`` (see Splits), ``horizon`` (500), ``n`` (2),
    ``benchmark_seed`` (0), ``terminate_on_success`` (False), ``observable_goal`` (False).

    ## Task distribution
    Uniform over Meta-World's 50 variations of the split (``metaworld.ML1(env_name,
    seed=benchmark_seed)``), drawn without replacement up to 50 tasks.

    ## Splits
    - ``train``: ML1's 50 train variations.
    - ``test``: ML1's 50 test variations (drawn from the same ranges with another seed).
    - ``ood``: 50 variations of ``ood_env_name``, a different environment with the same
      spaces; by default the same task with a wall in the way (``reach-wall-v3`` for
      ``reach-v3``; see :data:`WALL_VARIANTS`; required for other ``env_name`` values).
    """

    env_name: str = dataclasses.field(default="reach-v3", metadata={"help": "the Meta-World v3 environment"})
    ood_env_name: str = dataclasses.field(
        default="", metadata={"help": "environment of the ood split (default: env_name's wall variant)"}
    )

    ood_shift: ClassVar[str] = "ood_env_name: another environment (by default env_name's wall variant)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if METAWORLD_AVAILABLE:
            names = _metaworld().env_dict.ALL_V3_ENVIRONMENTS
            for field in ("env_name", "ood_env_name"):
                value = getattr(self, field)
                if value and value not in names:
                    raise ValueError(f"{field}={value!r} is not a Meta-World v3 environment; known: {', '.join(names)}")

    @property
    def resolved_ood_env_name(self) -> str:
        """The ood split's environment."""
        name = self.ood_env_name or WALL_VARIANTS.get(self.env_name, "")
        if not name:
            raise ValueError(f"ML1 has no default ood environment for {self.env_name!r}: set ood_env_name")
        return name

    def tasks_by_split(self) -> dict[str, tuple[MetaWorldTask, ...]]:
        tasks = benchmark_tasks("ML1", self.benchmark_seed, self.env_name)
        return {**tasks, "ood": custom_tasks((self.resolved_ood_env_name,), self.benchmark_seed)}


@dataclasses.dataclass(frozen=True)
class MetaWorldML10Family(MetaWorldFamily):
    """Meta-World ML10: ten training manipulation tasks, five held-out test tasks.

    ## Description
    A Sawyer arm meta-trains on 10 tasks (reach, push, pick-place, door-open, drawer-close,
    button-press-topdown, peg-insert-side, window-open, sweep, basketball) and must adapt to
    5 tasks it never trained on (drawer-open, door-close, shelf-place, sweep-into,
    lever-pull); which task it faces is not observed.

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: hand displacement (x, y, z) and gripper effort.

    ## Observation Space
    ``Box((39,), float64)`` as in ML1 (goal zeros unless ``observable_goal``).

    ## Rewards
    Meta-World's (v2), between 0 and 10 per step; success reported alongside (module
    docstring). Compare success rates, not returns, across environments.

    ## Starting State
    Meta-World's, deterministic given the task.

    ## Episode End
    Truncated after ``horizon`` steps (500); terminated at the first success only if
    ``terminate_on_success``. A trial is ``n`` episodes.

    ## Arguments
    ``horizon`` (500), ``n`` (2), ``benchmark_seed`` (0), ``terminate_on_success`` (False),
    ``observable_goal`` (False).

    ## Task distribution
    Uniform over the split's variations (``metaworld.ML10(seed=benchmark_seed)``): 50 per
    environment, so uniform over environments and then variations.

    ## Splits
    - ``train``: the 10 training environments x their 50 variations (500 tasks).
    - ``test``: the 5 test environments x 50 variations (250 tasks).
    - ``ood``: the 5 test environments of ML45 (bin-picking, box-close, hand-insert,
      door-lock, door-unlock) x 50 variations: tasks outside both ML10 sets, a wider shift
      than ``test``.
    """

    ood_shift: ClassVar[str] = "the 5 test environments of ML45, none of them among ML10's 15"

    def tasks_by_split(self) -> dict[str, tuple[MetaWorldTask, ...]]:
        ood_names = tuple(_metaworld().env_dict.ML45_V3["test"])
        return {**benchmark_tasks("ML10", self.benchmark_seed), "ood": custom_tasks(ood_names, self.benchmark_seed)}

