"""Stable-Baselines3 on any metarl family: an SB3 ``VecEnv`` over the family's native batched env.

    from stable_baselines3 import PPO
    from metarl.rl.sb3 import SB3VecEnv
    PPO("MlpPolicy", SB3VecEnv("metarl/Nav2D-v0", num_envs=16, seed=0), seed=0).learn(100_000)

:class:`SB3VecEnv` steps all sub-envs with one call of the family's batched env (no Python
loop over sub-envs, unlike ``DummyVecEnv`` over single envs) and speaks SB3's dialect: ``reset()``
returns observations only; a sub-env whose episode ends is reset in the same step, its last
observation in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` true when the
time limit (not the task) ended it. Each sub-env has a task: a fixed one, or a new one drawn at
every reset of that sub-env (from a split, or from a sampler of your own). Two options give the
settings meta-RL baselines need: ``oracle=True`` appends the task's parameters to every
observation (:class:`~metarl.rl.wrappers.TaskObservationVecEnv`), and ``trial_episodes=K`` makes
one SB3 episode a trial of ``K`` episodes in one task, observing RL²'s inputs (previous action,
reward, done: :class:`~metarl.rl.wrappers.PreviousStep`), for recurrent policies such as
sb3-contrib's ``RecurrentPPO``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from metarl.core.registry import make_family
from metarl.core.seeding import check_split
from metarl.rl.array_family import ArrayRLFamily, BatchedTaskEnv
from metarl.rl.family import RLFamily
from metarl.rl.wrappers import PreviousStep, TaskObservationVecEnv

TaskSampler = Callable[[int, np.random.Generator], Sequence[Any]]
"""Draws ``n`` tasks with a generator: called with the number of sub-envs being reset."""


class _SubEnv:
    """What ``get_attr``, ``set_attr`` and ``env_method`` reach for sub-env ``i``: its task
    (``task``, ``set_task``), its spaces, ``render_mode`` and ``render``; any other name is
    looked up on the family's batched env (the same for every sub-env)."""

    def __init__(self, owner: SB3VecEnv, index: int):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_index", index)

    @property
    def task(self) -> Any:
        return self._owner.tasks[self._index]

    def set_task(self, task: Any) -> None:
        """Give this sub-env ``task`` from its next reset on (and stop drawing tasks for it)."""
        self._owner.set_task(self._index, task)

    @property
    def render_mode(self) -> str | None:
        return self._owner.render_mode

    @property
    def observation_space(self) -> gym.Space:
        return self._owner.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self._owner.action_space

    def render(self) -> np.ndarray | None:
        return self._owner.render_sub_env(self._index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._owner.venv, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "task":
            self.set_task(value)
        else:
            setattr(self._owner.venv, name, value)


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a metarl family's batched env, one task per sub-env.

    Args:
        family: a family, or its id (``"metarl/Bandit-v0"``; ``family_kwargs`` build it).
        num_envs: sub-envs stepping together.
        tasks: one fixed task per sub-env; without it every reset of a sub-env draws its task.
        split: where drawn tasks come from (``train``, ``test``, ``ood``).
        task_sampler: draws tasks instead of the family's ``sample_tasks`` on ``split``.
        seed: seeds the task draws and the env (SB3's ``seed()`` reseeds both at the next reset).
        oracle: append each sub-env's task parameters to its observations.
        trial_episodes: if > 0, one SB3 episode is a trial of this many episodes in one task,
            observing ``[obs, previous action, reward, done]``; the trial ends terminated.
        render_mode: ``"rgb_array"`` (array families that draw frames, e.g. Nav2D) or None.
    """

    def __init__(
        self,
        family: RLFamily[Any] | str,
        num_envs: int = 8,
        tasks: Sequence[Any] | None = None,
        split: str = "train",
        task_sampler: TaskSampler | None = None,
        seed: int | None = None,
        oracle: bool = False,
        trial_episodes: int = 0,
        render_mode: str | None = None,
        **family_kwargs: Any,
    ):
        if isinstance(family, str):
            family = make_family(family, **family_kwargs)  # type: ignore[assignment]
        elif family_kwargs:
            raise TypeError(f"family arguments {sorted(family_kwargs)} apply to a family id, not to a built family")
        if not isinstance(family, RLFamily):
            raise TypeError(f"SB3VecEnv needs an RL family, got {type(family).__name__}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if trial_episodes < 0:
            raise ValueError(f"trial_episodes must be >= 0, got {trial_episodes}")
        if render_mode is not None and render_mode not in family.render_modes:
            raise ValueError(f"render_mode must be one of {[None, *family.render_modes]} for {type(family).__name__}, "
                             f"got {render_mode!r}")
        self.family = family
        self.split = check_split(split)
        self._sampler: TaskSampler = task_sampler or (lambda n, rng: family.sample_tasks(n, self.split, rng))
        self._task_rng = np.random.default_rng(seed)
        self._env_seed = seed
        # A sub-env with a fixed task keeps it; the others draw one at each reset.
        self._fixed = np.zeros(num_envs, dtype=bool)
        if tasks is not None:
            tasks = list(tasks)
            if len(tasks) != num_envs:
                raise ValueError(f"expected {num_envs} tasks (one per sub-env), got {len(tasks)}")
            self._fixed[:] = True
        else:  # placeholders: reset() draws the first tasks, so that seed() then reset() repeats them
            tasks = [family.default_task()] * num_envs
        # DISABLED autoreset: this adapter resets ended sub-envs itself, after giving them new tasks.
        inner = family.make_vec_env(num_envs, tasks, autoreset_mode=AutoresetMode.DISABLED)
        if render_mode is not None and not isinstance(inner, BatchedTaskEnv):
            raise ValueError(f"SB3VecEnv draws the sub-envs of array families; {type(family).__name__} steps "
                             "simulators: render one of its single envs, family.make_env(task, render_mode=...)")
        self.venv: Any = TaskObservationVecEnv(inner) if oracle else inner
        self.trial_episodes = trial_episodes
        obs_space = self.venv.single_observation_space
        self._previous = PreviousStep(obs_space, family.action_space, num_envs) if trial_episodes else None
        if self._previous is not None:
            obs_space = self._previous.observation_space
        self._episode = np.zeros(num_envs, dtype=np.int64)  # episodes completed in the current trial
        self._render_mode = render_mode
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, obs_space, family.action_space)

    # -- tasks --------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Any]:
        """The sub-envs' current tasks."""
        return list(self.venv.tasks)

    @property
    def task_rng(self) -> np.random.Generator:
        """The generator tasks are drawn from (saved in checkpoints of agents training on this env)."""
        return self._task_rng

    def set_task(self, index: int, task: Any) -> None:
        """Fix sub-env ``index``'s task from its next reset on."""
        tasks = self.tasks
        tasks[index] = task
        self.venv.set_tasks(tasks)
        self._fixed[index] = True

    def _draw_tasks(self, rows: np.ndarray) -> None:
        """New tasks for the sub-envs ``rows`` that have no fixed task."""
        rows = rows[~self._fixed[rows]]
        if rows.size:
            tasks = self.tasks
            for row, task in zip(rows, self._sampler(int(rows.size), self._task_rng), strict=True):
                tasks[row] = task
            self.venv.set_tasks(tasks)

    # -- SB3's VecEnv API ---------------------------------------------------------------------

    def reset(self) -> np.ndarray:
        """Reset every sub-env (new tasks where drawn); seeds set by :meth:`seed` apply now."""
        if self._seeds[0] is not None:  # SB3's seed(s) gives sub-env i seed s + i; the first fixes all
            # Reseeded in place: whoever holds the generator (an agent's checkpointed streams) keeps it.
            self._task_rng.bit_generator.state = np.random.default_rng(self._seeds[0]).bit_generator.state
            self._env_seed = self._seeds[0]
        self._draw_tasks(np.arange(self.num_envs))
        obs, info = self.venv.reset(seed=self._env_seed)
        self._env_seed = None  # a seed applies once; later resets continue the env's stream
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._episode[:] = 0
        return self._observe(obs)

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return obs if self._previous is None else self._previous.inputs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        actions = self._actions
        if isinstance(self.action_space, gym.spaces.Discrete):
            actions = actions.reshape(self.num_envs)  # SB3 may hand discrete actions as a column
        obs, rewards, terminated, truncated, _ = self.venv.step(actions)
        ended = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        rewards = np.asarray(rewards, dtype=np.float32)
        if self._previous is not None:
            self._previous.record(actions, rewards, ended)
            self._episode += ended
            done = self._episode >= self.trial_episodes
            # The trial, not the inner episode, is SB3's episode: it ends by design, so it terminates.
            terminated_out, truncated_out = done.copy(), np.zeros_like(done)
        else:
            done = ended
            terminated_out, truncated_out = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if ended.any():
            out = self._observe(obs)
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = out[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated_out[i] and not terminated_out[i])
            self._draw_tasks(np.flatnonzero(done))
            obs, _ = self.venv.reset(options={"reset_mask": ended})
            if self._previous is not None:
                self._previous.clear(done)
                self._episode[done] = 0
        return self._observe(obs), rewards, done, infos

    def close(self) -> None:
        self.venv.close()

    def _sub_envs(self, indices: VecEnvIndices) -> list[_SubEnv]:
        return [_SubEnv(self, i) for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """``attr_name`` of each sub-env: ``task``, ``render_mode``, spaces, else the batched env's."""
        if attr_name == "render_mode":  # asked by VecEnv.__init__, before anything else exists
            return [getattr(self, "_render_mode", None)] * len(list(self._get_indices(indices)))
        return [getattr(env, attr_name) for env in self._sub_envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` on each sub-env (``task`` fixes those sub-envs' tasks)."""
        for env in self._sub_envs(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call ``method_name`` on each sub-env (e.g. ``set_task``, ``render``)."""
        return [getattr(env, method_name)(*method_args, **method_kwargs) for env in self._sub_envs(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No sub-env is a Gymnasium wrapper stack: always False (SB3 then counts episodes itself)."""
        return [False] * len(list(self._get_indices(indices)))

    # -- rendering ----------------------------------------------------------------------------

    def render_sub_env(self, index: int) -> np.ndarray | None:
        """An RGB frame of sub-env ``index`` (``render_mode="rgb_array"``), else None."""
        if self._render_mode != "rgb_array":
            return None
        inner = self.venv.env if isinstance(self.venv, TaskObservationVecEnv) else self.venv
        assert isinstance(inner, BatchedTaskEnv) and isinstance(self.family, ArrayRLFamily)
        # The family draws the first sub-env of a batch: hand it a batch of one, sub-env ``index``.
        one = slice(index, index + 1)
        params = {k: v[one] for k, v in inner._params.items()}
        state = {k: v[one] for k, v in inner._state.items()}
        return self.family.render_rgb(params, state)

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.render_sub_env(i) for i in range(self.num_envs)]
