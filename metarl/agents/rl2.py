"""RL²: a recurrent policy that learns to adapt within its hidden state (Duan et al. 2016).

At every step the policy reads the observation, the previous action (one-hot for discrete
actions, raw for continuous ones), the previous reward and the episode-done flag. Its
hidden state persists across all episodes of a trial and is reset only at a trial's
start, so what it learns about the task in one episode carries into the next. The outer
loop is PPO over whole trials: the trial is the RL episode, so GAE bootstraps across the
episode ends inside a trial (section 2.2), and each minibatch holds whole trials for
back-propagation through time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from metarl.core.agent import IterationStats, cosine_decay, optimizer_step
from metarl.core.checks import check_memory, check_non_negative, check_positive
from metarl.core.distributed import all_reduce_sum, mean_scalars, own_slice, shard, world
from metarl.core.errors import UsageError
from metarl.core.seeding import torch_generator, torch_seeded
from metarl.rl.agent import (
    EnvDevice,
    TrainingStreams,
    TrialAgent,
    TrialConfig,
    env_device_field,
    resolve_env_device,
    trial_eval_result,
)
from metarl.rl.array_family import make_vec_env
from metarl.rl.distributions import ActionDistribution
from metarl.rl.family import RLFamily
from metarl.rl.losses import clipped_value_loss, count_share, masked_mean, normalize, ppo_loss
from metarl.rl.returns import gae
from metarl.rl.rollout import Trials, collect
from metarl.rl.sequence_cells import CellKind, cell_state_bytes, make_cell
from metarl.rl.spaces import SpaceCodec, space_dim
from metarl.rl.wrappers import task_features


@dataclasses.dataclass(frozen=True)
class RL2Config(TrialConfig):
    """RL² with a PPO outer loop; the defaults are tuned on the 5-armed bandit (experiments/RESULTS.md).

    Why gamma 0.9 and lambda 1: the previous action is an input, so the value of the next
    state depends on the action just taken; with lambda < 1 the bootstrapped value's errors
    enter the advantage correlated with that action, and on bandits PPO then collapsed to a
    deterministic policy that ignores rewards (entropy 1.6 -> 0.06 at a random-level return,
    even on tasks where all arms are equal). Monte-Carlo advantages (lambda 1) are unbiased,
    and gamma 0.9 keeps their variance low.

    Why lr 6e-3 and 15 M steps: the quickstart (these defaults, 5-armed bandit) then ends within
    3 minutes on 2 CPU cores above Thompson sampling, where lr 3e-3 in the same time stayed
    below it (experiments/RESULTS.md, "The quickstart").
    """

    total_env_steps: int = dataclasses.field(default=15_000_000, metadata={"help": "training budget in environment steps"})
    num_trials: int = dataclasses.field(default=1024, metadata={"help": "trials per iteration, stepping in lockstep (one task each)"})
    cell: CellKind = dataclasses.field(
        default="gru", metadata={"help": "sequence cell: a GRU, an LSTM, or a causal transformer over the whole trial"})
    hidden_size: int = dataclasses.field(default=64, metadata={"help": "recurrent state size (the transformer's width)"})
    transformer_layers: int = dataclasses.field(default=2, metadata={"help": "attention layers of --cell transformer"})
    transformer_heads: int = dataclasses.field(default=4, metadata={"help": "attention heads of --cell transformer"})
    lr: float = dataclasses.field(default=6e-3, metadata={"help": "Adam learning rate"})
    gamma: float = dataclasses.field(default=0.9, metadata={"help": "discount over the whole trial"})
    gae_lambda: float = dataclasses.field(
        default=1.0, metadata={"help": "GAE lambda (below 1, value errors that depend on the last action bias the policy)"}
    )
    clip: float = dataclasses.field(default=0.2, metadata={"help": "PPO ratio clip"})
    epochs: int = dataclasses.field(default=2, metadata={"help": "PPO epochs per iteration"})
    minibatches: int = dataclasses.field(default=4, metadata={"help": "minibatches (of whole trials) per epoch"})
    entropy_coef: float = dataclasses.field(default=0.01, metadata={"help": "entropy bonus weight"})
    lr_decay: bool = dataclasses.field(
        default=False, metadata={"help": "decay the learning rate along half a cosine to 0 at --total-env-steps"})
    entropy_decay: bool = dataclasses.field(
        default=False, metadata={"help": "decay the entropy bonus along half a cosine to 0 at --total-env-steps"})
    value_coef: float = dataclasses.field(default=0.5, metadata={"help": "value loss weight"})
    max_grad_norm: float = dataclasses.field(default=0.5, metadata={"help": "gradient clipping norm"})
    normalize_advantages: bool = dataclasses.field(default=True, metadata={"help": "normalise advantages per minibatch"})
    value_time_input: bool = dataclasses.field(
        default=True, metadata={"help": "give the value head (only) the fraction of the trial elapsed"}
    )
    value_task_input: bool = dataclasses.field(
        default=False, metadata={"help": "give the value head (only) the training task's parameters "
                                         "(an asymmetric critic; the policy never sees them)"}
    )
    reward_scale: float = dataclasses.field(default=1.0, metadata={"help": "multiply rewards by this for learning"})
    sample_eval: bool = dataclasses.field(default=True, metadata={"help": "sample actions in evaluation (else the mode)"})
    env_device: EnvDevice = env_device_field()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("total_env_steps", "num_trials", "hidden_size", "lr", "epochs", "minibatches", "clip",
                              "reward_scale", "transformer_layers", "transformer_heads"))
        check_non_negative(self, ("entropy_coef", "value_coef", "max_grad_norm"))
        if self.minibatches > self.num_trials:
            raise ValueError(f"--minibatches ({self.minibatches}) cannot exceed --num-trials ({self.num_trials})")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("--gamma and --gae-lambda must lie in [0, 1]")
        if self.cell == "transformer" and (self.hidden_size % self.transformer_heads or self.hidden_size % 2):
            raise ValueError(f"--hidden-size ({self.hidden_size}) must be even and a multiple of "
                             f"--transformer-heads ({self.transformer_heads}) for --cell transformer")


class RL2Net(nn.Module):
    """A memory-based actor-critic over (obs, previous action, previous reward, done): a
    recurrent cell or a causal transformer (:mod:`metarl.rl.sequence_cells`), whose state
    (hidden state or KV cache) spans the trial."""

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: int, cell: CellKind,
                 value_time: bool = False, max_len: int = 128, layers: int = 2, heads: int = 4,
                 task_dim: int = 0):
        super().__init__()
        self.value_time = value_time
        self.task_dim = task_dim
        self.input_dim = obs_dim + act_dim + 2
        self.dist = ActionDistribution(discrete)
        self.rnn = make_cell(cell, self.input_dim, hidden, max_len=max_len, layers=layers, heads=heads)
        self.pi = nn.Linear(hidden, act_dim)
        # Near the end of a trial a state's value shrinks with the steps left; a value head
        # that must infer the step from the recurrent state pulls the shared trunk towards
        # counting time, so it is given the elapsed fraction (the policy never sees it).
        # With the task's parameters as well (``task_dim``), the head estimates the return of
        # the rest of the trial in the task actually drawn rather than averaged over what the
        # history leaves possible: a lower-variance baseline for exploratory actions, whose
        # pay-off arrives many steps later. The policy's gradient stays unbiased, since the
        # task is drawn before and independently of the action being scored. Off by default:
        # on bandits it changed nothing at gamma 0.97 (experiments/RESULTS.md).
        extra = int(value_time) + task_dim
        self.v = (nn.Sequential(nn.Linear(hidden + extra, hidden), nn.Tanh(), nn.Linear(hidden, 1))
                  if extra else nn.Linear(hidden, 1))
        nn.init.orthogonal_(self.pi.weight, 0.01)
        nn.init.zeros_(self.pi.bias)
        self.log_std = nn.Parameter(torch.full((act_dim,), -0.5)) if not discrete else None

    def forward(self, x: torch.Tensor, state: Any = None, elapsed: torch.Tensor | None = None,
                task: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Action-distribution parameters (:mod:`metarl.rl.distributions`) and value for a
        ``[T, N, input]`` sequence following ``state`` (``None``: the trial starts with it), and
        the cell's state after it.

        ``elapsed`` (``[T, N, 1]``, the fraction of the trial elapsed) feeds the value head
        when the net was built with ``value_time``; ``task`` (``[T or 1, N, task_dim]``, the
        tasks' parameters) when it was built with ``task_dim``. Either missing reads as zeros:
        evaluation needs no value.
        """
        feat, state = self.rnn(x, state)
        lead = feat.shape[:-1]
        inputs = [feat]
        if self.value_time:
            inputs.append(torch.zeros(*lead, 1, device=feat.device) if elapsed is None else elapsed.expand(*lead, 1))
        if self.task_dim:
            inputs.append(torch.zeros(*lead, self.task_dim, device=feat.device) if task is None
                          else task.expand(*lead, self.task_dim))
        value = self.v(torch.cat(inputs, dim=-1) if len(inputs) > 1 else feat)
        head = self.pi(feat)
        if self.log_std is not None:
            head = self.dist.gaussian_params(head, self.log_std)
        return head, value.squeeze(-1), state


class RL2Policy:
    """RL²'s acting side (a :class:`~metarl.rl.rollout.TrialPolicy`): builds each step's
    input from the last action, reward and done flag, and carries the hidden state
    through the trial."""

    def __init__(self, net: RL2Net, obs_space: gym.Space, act_space: gym.Space, device: torch.device,
                 generator: torch.Generator, horizon: int, greedy: bool = False):
        self.net, self.device, self.generator, self.greedy = net, device, generator, greedy
        self.horizon = horizon
        self.t = 0
        self.codec = SpaceCodec(obs_space, act_space, device)
        self.obs_dim, self.act_dim = self.codec.obs_dim, self.codec.act_dim
        self.state: Any = None
        self.x: torch.Tensor | None = None
        self.task: torch.Tensor | None = None
        """The trial's task parameters ``[N, task_dim]`` for the value head (training only)."""
        self.last: dict[str, torch.Tensor] = {}

    def begin_trial(self, num_envs: int) -> None:
        """Reset the hidden state and the previous action/reward/done inputs."""
        self.state = None  # a zero recurrent state, an empty KV cache
        self.t = 0
        self.x = torch.zeros(num_envs, self.net.input_dim, device=self.device)

    def write_obs(self, obs: np.ndarray) -> torch.Tensor:
        """Put ``obs`` into the input row and return the full input ``[N, input]``."""
        assert self.x is not None
        self.x[:, : self.obs_dim] = self.codec.encode_obs(obs)
        return self.x

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Env actions for ``obs``; :attr:`last` keeps the step's input, action (in network
        units), log-probability and value, ``[N, ...]`` each, for training."""
        x = self.write_obs(obs)
        elapsed = torch.full((1, 1, 1), self.t / self.horizon, device=self.device)
        task = None if self.task is None else self.task[None]
        head, value, self.state = self.net(x[None], self.state, elapsed, task)
        self.t += 1
        action, logp = self.net.dist.sample(head[0], self.generator, greedy=self.greedy)
        self.last = {"x": x.clone(), "actions": action, "logp": logp, "values": value[0]}
        return self.codec.to_env(action, tensor=isinstance(obs, torch.Tensor))

    def observe(
        self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray, next_obs: np.ndarray
    ) -> None:
        """Feed the step's action, reward and done flag into the next input."""
        assert self.x is not None
        a0 = self.obs_dim
        self.x[:, a0 : a0 + self.act_dim] = self.codec.encode_action(actions)
        self.x[:, -2] = torch.as_tensor(rewards, device=self.device, dtype=torch.float32)
        self.x[:, -1] = torch.as_tensor(dones, device=self.device, dtype=torch.float32)


class RL2(TrialAgent):
    """RL² (Duan et al. 2016) with a PPO outer loop over batched trials."""

    name: ClassVar[str] = "rl2"
    config_class: ClassVar[type] = RL2Config
    budget_fields: ClassVar[tuple[str, ...]] = ("total_env_steps",)
    kind: ClassVar[str] = "rl"
    default_env: ClassVar[str] = "metarl/Bandit-v0"
    amp_refusal: ClassVar[str | None] = (
        "PPO's ratio exp(log p - old log p) would carry bfloat16's 3 significant digits, enough to move "
        "ratios across the clip range, and the recurrent state accumulates the rounding over the trial; "
        "its small networks gain nothing from it")

    config: RL2Config

    def __init__(self, config: RL2Config, family: RLFamily[Any], seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        # Under torchrun each process runs its share of the trials (core/distributed.py).
        self.local_trials = shard(config.num_trials, "--num-trials")
        if config.minibatches > self.local_trials:
            raise UsageError(f"--minibatches ({config.minibatches}) cannot exceed the trials of one process "
                             f"({self.local_trials} of --num-trials {config.num_trials})")
        # The rollout of one iteration: per step and trial, the input row and four floats.
        width = space_dim(family.observation_space) + 2 * space_dim(family.action_space) + 6
        env_bytes, env_note = family.env_memory_note(self.local_trials)
        cell_bytes = cell_state_bytes(config.cell, self.local_trials, config.hidden_size, self._horizon(),
                                      config.transformer_layers)
        check_memory(4.0 * self._horizon() * self.local_trials * width + cell_bytes + env_bytes,
                     f"--num-trials {config.num_trials} (trials of {self._horizon()} steps{env_note})")
        self.env_device = resolve_env_device(config.env_device, self.device, family)
        self.env = make_vec_env(family, self.local_trials, autoreset_mode=AutoresetMode.SAME_STEP, device=self.env_device)
        self.obs_space, self.act_space = family.observation_space, family.action_space
        discrete = isinstance(self.act_space, gym.spaces.Discrete)
        with torch_seeded(seed):
            self.net = RL2Net(space_dim(self.obs_space), space_dim(self.act_space), discrete,
                              config.hidden_size, config.cell, config.value_time_input, max_len=self._horizon(),
                              layers=config.transformer_layers, heads=config.transformer_heads,
                              task_dim=self._task_dim()).to(self.device)
        self.streams = TrainingStreams(seed, self.device, world().rank)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, eps=1e-5)
        self.task_rng, self.env_rng, self.generator = self.streams.task_rng, self.streams.env_rng, self.streams.generator
        self.env_steps = 0
        self.iterations = 0
        # Returns over a 100-pull trial reach ~100: the value head predicts them normalised
        # by running statistics, so the value loss cannot drown the policy gradient in the
        # shared recurrent trunk when gradients are clipped.
        self.ret_mean, self.ret_std = 0.0, 1.0

    def progress(self) -> float:
        return min(1.0, self.env_steps / self.config.total_env_steps)

    def trial_policy(self, seed: int) -> RL2Policy:
        generator = torch_generator(seed, self.device)
        return RL2Policy(self.net, self.obs_space, self.act_space, self.device, generator, self._horizon(),
                         greedy=not self.config.sample_eval)

    def _horizon(self) -> int:
        return self.episodes_per_trial() * self.family.max_episode_steps

    def _task_dim(self) -> int:
        if not self.config.value_task_input:
            return 0
        try:
            return int(task_features(self.family.default_task()).shape[0])
        except TypeError as err:
            raise UsageError(f"--value-task-input needs numeric task parameters: {err}") from None

    def _collect(self) -> Trials:
        """Run one trial in each of this process's share of ``num_trials`` fresh training tasks,
        recording every step (and, for ``value_task_input``, the tasks' parameters as
        ``records["task"]``, ``[1, N, task_dim]``)."""
        tasks = self.family.sample_tasks(self.config.num_trials, "train", self.task_rng)
        own = tasks[own_slice(self.config.num_trials)]
        self.env.set_tasks(own)
        policy = RL2Policy(self.net, self.obs_space, self.act_space, self.device, self.generator, self._horizon())
        if self.config.value_task_input:
            policy.task = torch.as_tensor(np.stack([task_features(t) for t in own]), device=self.device)
        trials = collect(self.env, policy, self.episodes_per_trial(), self.family.max_episode_steps,
                         seed=int(self.env_rng.integers(2**31)), record=lambda: policy.last, device=self.device)
        if policy.task is not None:
            trials.records["task"] = policy.task[None]
        return trials

    def train_iteration(self) -> IterationStats:
        self.net.train()
        return self.update(self._collect())

    def update(self, trials: Trials) -> IterationStats:
        """PPO epochs on this process's ``trials``; under data parallelism every statistic
        (advantage normalisation, return statistics, loss means) is over all processes' trials,
        so N processes with a share each take the step one process takes on all of them."""
        cfg = self.config
        batch = trials.records
        active = batch["active"]
        values = (batch["values"] * self.ret_std + self.ret_mean) * active  # the head predicts normalised returns
        # The trial ends after an env's last active step; later steps carry no reward or value.
        next_active = torch.cat([active[1:], torch.zeros_like(active[:1])])
        trial_end = active & ~next_active
        adv, returns = gae(batch["rewards"] * cfg.reward_scale, values, trial_end,
                           torch.zeros_like(values[0]), cfg.gamma, cfg.gae_lambda)
        self._update_return_stats(returns[active])
        targets = (returns - self.ret_mean) / self.ret_std
        n = self.local_trials
        steps = batch["x"].shape[0]
        elapsed = (torch.arange(steps, device=self.device, dtype=torch.float32) / self._horizon()).view(steps, 1, 1)
        # Kept on the device and read once per iteration: a read per minibatch would make an
        # accelerator wait for every step.
        log: dict[str, list[torch.Tensor]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl",
                                                              "clip_fraction")}
        # Schedules follow the step budget, so a resumed run continues the same curve (a resume
        # that raises --total-env-steps stretches what is left of it).
        decay = cosine_decay(self.env_steps / cfg.total_env_steps)
        lr = cfg.lr * decay if cfg.lr_decay else cfg.lr
        entropy_coef = cfg.entropy_coef * decay if cfg.entropy_decay else cfg.entropy_coef
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, device=self.device, generator=self.generator)
            for mb in perm.chunk(cfg.minibatches):
                task = batch["task"][:, mb] if "task" in batch else None
                head, v, _ = self.net(batch["x"][:, mb], None, elapsed, task)
                mask = active[:, mb]
                logp = self.net.dist.log_prob(head, batch["actions"][:, mb])
                entropy = self.net.dist.entropy(head)
                a = adv[:, mb]
                if cfg.normalize_advantages:
                    a = normalize(a, mask, across_processes=True)
                pl, diag = ppo_loss(logp, batch["logp"][:, mb], a, cfg.clip, mask)
                vl = clipped_value_loss(v, v, targets[:, mb], None, mask)
                ent = masked_mean(entropy, mask)
                loss = (pl + cfg.value_coef * vl - entropy_coef * ent) * count_share(mask)
                optimizer_step(self.optimizer, loss, cfg.max_grad_norm, lr=lr if cfg.lr_decay else None)
                for key, val in (("policy_loss", pl), ("value_loss", vl), ("entropy", ent),
                                 ("approx_kl", diag["approx_kl"]), ("clip_fraction", diag["clip_fraction"])):
                    log[key].append(val.detach().float())
        env_steps = int(all_reduce_sum(torch.tensor(float(trials.env_steps), dtype=torch.float64)).item())
        self.env_steps += env_steps
        self.iterations += 1
        with torch.no_grad():
            resid = (returns - values)[active]
            explained = 1.0 - float(resid.var() / returns[active].var().clamp_min(1e-8))
        curve = trial_eval_result(trials.returns)
        means = torch.stack([torch.stack(v).mean() for v in log.values()]).tolist()
        scalars = dict(zip((f"train/{k}" for k in log), means, strict=True))
        scalars.update({"train/trial_return": float(curve.scores.mean()), "train/explained_variance": explained})
        if cfg.lr_decay or cfg.entropy_decay:
            scalars.update({"train/lr": lr, "train/entropy_coef": entropy_coef})
        scalars = mean_scalars(scalars)
        return IterationStats(env_steps, scalars, curve, headline={"return": scalars["train/trial_return"]})

    def _update_return_stats(self, returns: torch.Tensor, momentum: float = 0.9) -> None:
        # Over every process's returns: sum, sum of squares and count in one collective.
        r = returns.detach().to(torch.float64)
        total = all_reduce_sum(torch.stack([r.sum(), (r * r).sum(), torch.tensor(float(r.numel()), dtype=r.dtype,
                                                                                   device=r.device)]))
        count = float(total[2])
        mean = float(total[0]) / max(count, 1.0)
        var = max(float(total[1]) - count * mean * mean, 0.0) / max(count - 1.0, 1.0)
        std = max(var ** 0.5, 1e-4)
        if self.iterations == 0:
            self.ret_mean, self.ret_std = mean, std
        else:
            self.ret_mean = momentum * self.ret_mean + (1 - momentum) * mean
            self.ret_std = momentum * self.ret_std + (1 - momentum) * std

    def state_dict(self) -> dict[str, Any]:
        return {
            "ret_mean": self.ret_mean,
            "ret_std": self.ret_std,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "env_steps": self.env_steps,
            "iterations": self.iterations,
            **self.streams.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.ret_mean, self.ret_std = float(state["ret_mean"]), float(state["ret_std"])
        self.env_steps = int(state.get("env_steps", 0))
        self.iterations = int(state.get("iterations", 0))
        self.streams.load_state_dict(state)
