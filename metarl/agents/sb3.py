"""Stable-Baselines3 baselines of meta-RL papers: PPO (``--algo ppo``) and SAC (``--algo sac``).

Three settings, chosen by ``--mode``, each evaluated on held-out tasks:

- ``multitask``: one task-agnostic policy trained on the training distribution (a new task at
  every episode). It cannot tell tasks apart, so it learns what suits them on average; with
  ``--recurrent`` (PPO only, sb3-contrib's ``RecurrentPPO``) an episode is an RL² trial with
  RL²'s inputs, so an LSTM can adapt as RL² does.
- ``oracle``: the same, with the task's parameters appended to every observation
  (:class:`~metarl.rl.wrappers.TaskObservationVecEnv`): what a meta-learner could reach if it
  identified the task at once, an upper bound.
- ``scratch``: no meta-training; a fresh policy trains on each held-out task alone for
  ``--scratch-steps`` environment steps. Its curve is the return of one trial against the
  environment steps spent in that task.

Multitask and oracle policies are evaluated like RL²: one trial per held-out task through
:func:`~metarl.rl.rollout.run_trials`, so their reports have the same curve (return per episode)
and score (total return per trial). Training steps SB3 on :class:`~metarl.rl.sb3.SB3VecEnv`,
the family's native batched env; one iteration is one rollout of ``--n-steps`` per sub-env
(PPO: and its update; SAC: with a gradient step every vector step).

Checkpoints hold the networks, the optimisers, the counters and the task stream; a resumed run
starts a fresh rollout (PPO) or an empty replay buffer (SAC), so it continues close to, not
exactly where, it stopped.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

from metarl.core.agent import EvalResult, IterationStats
from metarl.core.checks import check_positive
from metarl.core.distributed import world
from metarl.core.errors import UsageError
from metarl.core.registry import MissingDependencyError
from metarl.core.seeding import Streams, torch_seeded
from metarl.core.task import Task
from metarl.rl.agent import TrialAgent, TrialConfig, trial_eval_result
from metarl.rl.family import RLFamily
from metarl.rl.rollout import run_trials
from metarl.rl.sb3 import SB3VecEnv
from metarl.rl.wrappers import PreviousStep, TaskObservationVecEnv

Mode = Literal["multitask", "oracle", "scratch"]


@dataclasses.dataclass(frozen=True)
class SB3Config(TrialConfig):
    """An SB3 baseline; PPO's defaults are SB3's apart from the rollout (16 sub-envs x 128 steps)
    and 4 epochs, which keep an iteration short on 2 CPU cores."""

    mode: Mode = dataclasses.field(
        default="multitask", metadata={"help": "multitask (task-agnostic policy), oracle (task in the observation), "
                                               "scratch (a fresh policy trained on each held-out task)"})
    total_env_steps: int = dataclasses.field(
        default=1_000_000, metadata={"help": "training budget in environment steps (multitask, oracle)"})
    recurrent: bool = dataclasses.field(
        default=False, metadata={"help": "PPO: sb3-contrib's RecurrentPPO (LSTM) over RL² trials with RL²'s inputs"})
    num_envs: int = dataclasses.field(default=16, metadata={"help": "sub-envs stepping together"})
    n_steps: int = dataclasses.field(default=128, metadata={"help": "steps per sub-env in one iteration (PPO: the rollout)"})
    lr: float = dataclasses.field(default=3e-4, metadata={"help": "Adam learning rate"})
    gamma: float = dataclasses.field(default=0.99, metadata={"help": "discount"})
    net_arch: tuple[int, ...] = dataclasses.field(default=(64, 64), metadata={"help": "hidden layer widths"})
    batch_size: int = dataclasses.field(default=256, metadata={"help": "minibatch size"})
    n_epochs: int = dataclasses.field(default=4, metadata={"help": "PPO: epochs per rollout"})
    gae_lambda: float = dataclasses.field(default=0.95, metadata={"help": "PPO: GAE lambda"})
    clip: float = dataclasses.field(default=0.2, metadata={"help": "PPO: ratio clip"})
    ent_coef: float = dataclasses.field(default=0.0, metadata={"help": "PPO: entropy bonus weight"})
    lstm_hidden_size: int = dataclasses.field(default=64, metadata={"help": "--recurrent: LSTM state size"})
    buffer_size: int = dataclasses.field(default=1_000_000, metadata={"help": "SAC: replay buffer size"})
    learning_starts: int = dataclasses.field(default=1_000, metadata={"help": "SAC: random steps before learning"})
    gradient_steps: int = dataclasses.field(default=1, metadata={"help": "SAC: gradient steps per vector step"})
    scratch_steps: int = dataclasses.field(
        default=20_000, metadata={"help": "scratch: environment steps of training in each held-out task"})
    scratch_points: int = dataclasses.field(
        default=10, metadata={"help": "scratch: evaluations along each task's training (the curve's points after 0)"})
    scratch_tasks: int = dataclasses.field(
        default=10, metadata={"help": "scratch: at most this many held-out tasks (each trains a policy)"})
    scratch_eval_trials: int = dataclasses.field(
        default=10, metadata={"help": "scratch: trials averaged at each point of a task's curve"})
    sample_eval: bool = dataclasses.field(default=True, metadata={"help": "sample actions in evaluation (else the mode)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("total_env_steps", "num_envs", "n_steps", "lr", "batch_size", "n_epochs", "clip",
                              "lstm_hidden_size", "buffer_size", "gradient_steps", "scratch_steps", "scratch_points",
                              "scratch_tasks", "scratch_eval_trials"))
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("--gamma and --gae-lambda must lie in [0, 1]")
        if self.ent_coef < 0 or self.learning_starts < 0:
            raise ValueError("--ent-coef and --learning-starts must be >= 0")
        if not self.net_arch or min(self.net_arch) < 1:
            raise ValueError(f"--net-arch must be positive widths, got {self.net_arch}")
        if self.recurrent and self.mode == "scratch":
            raise ValueError("--recurrent adapts across the episodes of a trial; --mode scratch trains on one task "
                             "and has nothing to adapt to: drop --recurrent")


class SB3TrialPolicy:
    """A trained SB3 model acting in batched trials (a :class:`~metarl.rl.rollout.TrialPolicy`):
    for a recurrent model it builds RL²'s inputs and carries the LSTM state through the trial,
    starting it afresh at the trial's start only."""

    def __init__(self, model: Any, family: RLFamily[Any], recurrent: bool, deterministic: bool, obs_space: gym.Space):
        self.model, self.family, self.recurrent, self.deterministic = model, family, recurrent, deterministic
        self.obs_space = obs_space
        self.previous: PreviousStep | None = None
        self.state: Any = None
        self.start = np.ones(0, dtype=bool)

    def begin_trial(self, num_envs: int) -> None:
        self.state = None
        self.start = np.ones(num_envs, dtype=bool)
        if self.recurrent:
            self.previous = PreviousStep(self.obs_space, self.family.action_space, num_envs)

    def act(self, obs: np.ndarray) -> Any:
        x = self.previous.inputs(obs) if self.previous is not None else obs
        actions, self.state = self.model.predict(x, state=self.state, episode_start=self.start,
                                                 deterministic=self.deterministic)
        self.start[:] = False
        return actions

    def observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray,
                next_obs: np.ndarray) -> None:
        if self.previous is not None:
            self.previous.record(actions, rewards, dones)


class SB3Agent(TrialAgent):
    """An SB3 algorithm in one of the three baseline settings (see the module's docstring)."""

    config_class: ClassVar[type] = SB3Config
    budget_fields: ClassVar[tuple[str, ...]] = ("total_env_steps",)
    kind: ClassVar[str] = "rl"
    default_env: ClassVar[str] = "metarl/Nav2D-v0"

    config: SB3Config

    def __init__(self, config: SB3Config, family: RLFamily[Any], seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        if world().size > 1:
            raise UsageError(f"--algo {self.name} trains one Stable-Baselines3 model in one process; run it without "
                             "torchrun (data parallelism covers rl2, maml_pg and the supervised learners)")
        self.check_family(family)
        self.algorithm()  # a missing optional dependency fails now, not at the first iteration
        self.env_steps = 0
        self.iterations = 0
        self.model: Any = None
        self.env: SB3VecEnv | None = None
        if config.mode != "scratch":
            self.env = self._vec_env(seed=seed)
            self.model = self._new_model(self.env, seed)
            self.streams = Streams(task_rng=self.env.task_rng)

    # -- what differs between algorithms ------------------------------------------------------

    def check_family(self, family: RLFamily[Any]) -> None:
        """Raise ``ValueError`` if this algorithm cannot act in ``family``."""

    @abc.abstractmethod
    def algorithm(self) -> tuple[type, dict[str, Any]]:
        """The SB3 class and its keyword arguments for this config."""

    # -- building -----------------------------------------------------------------------------

    def _vec_env(self, seed: int, tasks: Sequence[Task] | None = None) -> SB3VecEnv:
        cfg = self.config
        return SB3VecEnv(self.family, cfg.num_envs, tasks=tasks, seed=seed, oracle=cfg.mode == "oracle",
                         trial_episodes=self.episodes_per_trial() if cfg.recurrent else 0)

    def _new_model(self, env: SB3VecEnv, seed: int) -> Any:
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import VecMonitor

        cls, kwargs = self.algorithm()
        model = cls(env=VecMonitor(env), seed=seed, device=self.device, verbose=0, **kwargs)
        model.set_logger(Logger(None, []))  # metarl's trainer writes TensorBoard; SB3 only records
        return model

    def _learn(self, model: Any, steps: int) -> int:
        """Train ``model`` for about ``steps`` more environment steps; returns the steps taken."""
        before = model.num_timesteps
        model.learn(total_timesteps=steps, reset_num_timesteps=False, progress_bar=False)
        return int(model.num_timesteps - before)

    def _policy(self, model: Any, env: SB3VecEnv) -> SB3TrialPolicy:
        # A recurrent policy's RL² inputs extend what the (oracle or plain) batched env observes.
        return SB3TrialPolicy(model, self.family, self.config.recurrent, not self.config.sample_eval,
                              env.venv.single_observation_space)

    def trial_policy(self, seed: int) -> SB3TrialPolicy:
        assert self.env is not None, "--mode scratch has no trained policy of its own"
        return self._policy(self.model, self.env)

    # -- training -----------------------------------------------------------------------------

    def progress(self) -> float:
        if self.config.mode == "scratch":
            return 1.0  # nothing to meta-train: evaluation trains on each held-out task
        return min(1.0, self.env_steps / self.config.total_env_steps)

    def train_iteration(self) -> IterationStats:
        if self.model is None:
            raise TypeError(f"--mode scratch has no meta-training: {self.name} trains on each held-out task in "
                            "evaluation")
        steps = self._learn(self.model, self.config.n_steps * self.config.num_envs)
        self.env_steps += steps
        self.iterations += 1
        values = self.model.logger.name_to_value
        scalars = {f"train/{key.split('/', 1)[1]}": float(v) for key, v in values.items() if key.startswith("train/")}
        episodes = list(self.model.ep_info_buffer)
        headline = {}
        if episodes:
            scalars["train/episode_return"] = float(np.mean([e["r"] for e in episodes]))
            scalars["train/episode_length"] = float(np.mean([e["l"] for e in episodes]))
            headline["return"] = scalars["train/episode_return"]
        return IterationStats(steps, scalars, None, headline)

    # -- evaluation ---------------------------------------------------------------------------

    def eval_task_count(self, requested: int) -> int:
        return min(requested, self.config.scratch_tasks) if self.config.mode == "scratch" else requested

    def _run(self, model: Any, env: SB3VecEnv, tasks: Sequence[Task], seed: int) -> np.ndarray:
        """Per-task, per-episode returns of one trial of ``model`` (trained on ``env``) in each task."""
        wrap: Any = TaskObservationVecEnv if self.config.mode == "oracle" else None
        with torch_seeded(seed):  # SB3 samples actions from torch's global generator
            return run_trials(self._policy(model, env), self.family, tasks, self.episodes_per_trial(), seed=seed,
                              wrap=wrap).returns

    def _report_extra(self) -> dict[str, Any]:
        return {"mode": self.config.mode, "recurrent": self.config.recurrent}

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        if self.config.mode == "scratch":
            return self._evaluate_scratch(tasks, seed)
        assert self.env is not None
        result = trial_eval_result(self._run(self.model, self.env, tasks, seed))
        result.extra.update(self._report_extra())
        return result

    def _evaluate_scratch(self, tasks: Sequence[Task], seed: int) -> EvalResult:
        """Train a fresh policy on each task; its curve is the mean return of a trial (over
        ``scratch_eval_trials`` trials) after 0, s/P, ..., s environment steps in that task."""
        cfg = self.config
        points = np.linspace(0, cfg.scratch_steps, cfg.scratch_points + 1).round().astype(int)
        curves = np.zeros((len(tasks), len(points)))
        xs = points.copy()
        for i, task in enumerate(tasks):
            env = self._vec_env(seed=seed + i, tasks=[task] * cfg.num_envs)
            model = self._new_model(env, seed + i)
            done = 0
            for j, point in enumerate(points):
                if point > done:
                    done += self._learn(model, int(point - done))
                xs[j] = done  # SB3 steps whole vector steps: the exact count, not the target
                curves[i, j] = self._run(model, env, [task] * cfg.scratch_eval_trials, seed + i).sum(axis=1).mean()
            env.close()
        return EvalResult("env_steps", [int(x) for x in xs], "trial_return", curves, "total_return_per_trial",
                          curves[:, -1], extra={**self._report_extra(), "scratch_steps": cfg.scratch_steps})

    # -- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        if self.model is None:
            return {"env_steps": 0, "iterations": 0}
        extra = {"log_ent_coef": self.model.log_ent_coef} if getattr(self.model, "log_ent_coef", None) is not None else {}
        return {"parameters": self.model.get_parameters(), "num_timesteps": int(self.model.num_timesteps),
                "env_steps": self.env_steps, "iterations": self.iterations, **extra, **self.streams.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps = int(state.get("env_steps", 0))
        self.iterations = int(state.get("iterations", 0))
        if self.model is None:
            return
        self.model.set_parameters(state["parameters"], exact_match=True, device=self.device)
        self.model.num_timesteps = int(state["num_timesteps"])
        if "log_ent_coef" in state:
            with torch.no_grad():
                self.model.log_ent_coef.copy_(state["log_ent_coef"])
        self.streams.load_state_dict(state)


class PPOAgent(SB3Agent):
    """SB3's PPO (sb3-contrib's RecurrentPPO with ``--recurrent``), any RL family."""

    name: ClassVar[str] = "ppo"

    def algorithm(self) -> tuple[type, dict[str, Any]]:
        cfg = self.config
        kwargs: dict[str, Any] = {
            "learning_rate": cfg.lr, "n_steps": cfg.n_steps, "batch_size": cfg.batch_size, "n_epochs": cfg.n_epochs,
            "gamma": cfg.gamma, "gae_lambda": cfg.gae_lambda, "clip_range": cfg.clip, "ent_coef": cfg.ent_coef,
        }
        arch = list(cfg.net_arch)
        if cfg.recurrent:
            try:
                from sb3_contrib import RecurrentPPO
            except ImportError as exc:
                raise MissingDependencyError(
                    f"--recurrent uses sb3-contrib's RecurrentPPO, which is not installed: pip install "
                    f"\"metarl[baselines]\" ({exc})") from exc
            kwargs["policy_kwargs"] = {"lstm_hidden_size": cfg.lstm_hidden_size, "net_arch": arch}
            return RecurrentPPO, {"policy": "MlpLstmPolicy", **kwargs}
        from stable_baselines3 import PPO

        kwargs["policy_kwargs"] = {"net_arch": arch}
        return PPO, {"policy": "MlpPolicy", **kwargs}


class SACAgent(SB3Agent):
    """SB3's SAC, for families with continuous (Box) actions."""

    name: ClassVar[str] = "sac"

    def check_family(self, family: RLFamily[Any]) -> None:
        if not isinstance(family.action_space, gym.spaces.Box):
            raise ValueError(f"SAC acts in continuous (Box) action spaces, and {type(family).__name__}'s actions are "
                             f"{family.action_space}: use --algo ppo")
        if self.config.recurrent:
            raise ValueError("--recurrent is PPO's (sb3-contrib's RecurrentPPO); SAC has no recurrent policy: use "
                             "--algo ppo --recurrent")

    def algorithm(self) -> tuple[type, dict[str, Any]]:
        from stable_baselines3 import SAC

        cfg = self.config
        return SAC, {"policy": "MlpPolicy", "learning_rate": cfg.lr, "buffer_size": cfg.buffer_size,
                     "learning_starts": cfg.learning_starts, "batch_size": cfg.batch_size, "gamma": cfg.gamma,
                     "train_freq": 1, "gradient_steps": cfg.gradient_steps,
                     "policy_kwargs": {"net_arch": list(cfg.net_arch)}}
