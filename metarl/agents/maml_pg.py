"""MAML policy gradient (Finn et al. 2017, section 5.3), with Meta-SGD's learned step sizes.

Each meta-iteration samples a meta-batch of training tasks. In every task the current
initial parameters ``theta`` collect trajectories; one (or more) policy-gradient steps on
them give adapted parameters ``theta'_i`` (REINFORCE with the linear feature baseline of
Duan et al. 2016 and GAE); the adapted policies collect fresh trajectories, and ``theta``
(and, with ``--meta-sgd``, the per-parameter step sizes of Li et al. 2017) is updated on
the post-adaptation objective, differentiated through the inner step (second order by
default). The outer optimiser is TRPO (conjugate gradient on Fisher-vector products, KL
limit 0.01, backtracking line search), as in the paper, or PPO's clipped objective
(ProMP-style, Rothfuss et al. 2019).

All tasks and all their trajectories step at once in the family's batched env, and the
inner step runs for all tasks at once on a task-batched policy (:mod:`metarl.core.inner_loop`).

With ``--inner-steps 0`` training reduces to multi-task TRPO on the pre-adaptation
returns: that is the MAML paper's *pretrained* baseline, evaluated (fine-tuned) with the
same inner steps; ``python -m metarl.evaluate RUN --init random`` gives the *random
initialisation* baseline.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn
from torch.func import functional_call

from metarl.core.agent import Agent, EvalResult, InnerLoopAgent, IterationStats
from metarl.core.checks import check_memory, check_non_negative, check_positive
from metarl.core.distributed import (
    all_reduce_grads,
    all_reduce_mean,
    all_reduce_sum,
    mean_scalars,
    own_slice,
    shard,
    world,
)
from metarl.core.inner_loop import Params, StepSizes, adapt_step_tasks, params_of
from metarl.core.seeding import DATA_KEY, stream, torch_generator, torch_seeded
from metarl.core.task import Task
from metarl.rl.agent import EnvDevice, TrainingStreams, env_device_field, resolve_env_device
from metarl.rl.array_family import make_vec_env
from metarl.rl.distributions import ActionDistribution
from metarl.rl.family import RLFamily, TaskVectorEnv
from metarl.rl.losses import per_task_mean
from metarl.rl.returns import discounted_returns, gae, linear_feature_baseline
from metarl.rl.rollout import collect
from metarl.rl.spaces import SpaceCodec
from metarl.rl.trpo import TRPOStats, trpo_step


@dataclasses.dataclass(frozen=True)
class MAMLPGConfig:
    """MAML policy gradient; the defaults are the MAML paper's 2D-navigation setup."""

    iterations: int = dataclasses.field(default=300, metadata={"help": "meta-iterations (the training budget)"})
    meta_batch: int = dataclasses.field(default=20, metadata={"help": "tasks per meta-iteration"})
    trajectories: int = dataclasses.field(default=20, metadata={"help": "trajectories per task for each inner step and after"})
    inner_steps: int = dataclasses.field(
        default=1, metadata={"help": "inner policy-gradient steps in training (0: multi-task pretraining baseline)"})
    inner_lr: float = dataclasses.field(default=0.1, metadata={"help": "inner step size (Meta-SGD: its initial value)"})
    meta_sgd: bool = dataclasses.field(default=False, metadata={"help": "learn one inner step size per parameter (Meta-SGD)"})
    per_step_lr: bool = dataclasses.field(default=False, metadata={"help": "with --meta-sgd: a separate set per inner step"})
    first_order: bool = dataclasses.field(default=False, metadata={"help": "drop the second-order term of the meta-gradient"})
    outer: Literal["trpo", "ppo"] = dataclasses.field(default="trpo", metadata={"help": "outer optimiser"})
    max_kl: float = dataclasses.field(default=0.01, metadata={"help": "TRPO: KL limit of one meta-update"})
    cg_iters: int = dataclasses.field(default=10, metadata={"help": "TRPO: conjugate-gradient iterations"})
    cg_damping: float = dataclasses.field(default=1e-5, metadata={"help": "TRPO: damping added to the Fisher matrix"})
    fvp: Literal["gauss-newton", "autograd"] = dataclasses.field(
        default="gauss-newton",
        metadata={"help": "TRPO: Fisher-vector products as J^T M J v (forward and reverse mode), or by double "
                          "backward through the KL (same matrix at the sampling policy, slower)"})
    ls_steps: int = dataclasses.field(default=15, metadata={"help": "TRPO: line-search shrinkings before giving up"})
    ls_backtrack: float = dataclasses.field(
        default=0.8, metadata={"help": "TRPO: line-search shrink factor (rllab's 0.8: the full step's KL lands just "
                                       "above the limit, and halving would spend a quarter of it)"})
    ppo_epochs: int = dataclasses.field(default=5, metadata={"help": "PPO: meta-gradient steps per meta-iteration"})
    ppo_clip: float = dataclasses.field(default=0.2, metadata={"help": "PPO: ratio clip of the outer objective"})
    meta_lr: float = dataclasses.field(default=1e-3, metadata={"help": "PPO: Adam learning rate"})
    gamma: float = dataclasses.field(default=0.99, metadata={"help": "discount"})
    gae_lambda: float = dataclasses.field(default=1.0, metadata={"help": "GAE lambda (1: Monte-Carlo returns minus baseline)"})
    hidden_sizes: tuple[int, ...] = dataclasses.field(default=(100, 100), metadata={"help": "policy MLP widths"})
    init_std: float = dataclasses.field(default=1.0, metadata={"help": "initial std of Gaussian actions in [-1, 1] units"})
    eval_inner_steps: int = dataclasses.field(default=3, metadata={"help": "inner steps in evaluation (the curve is 0..N)"})
    eval_batch: int = dataclasses.field(default=100, metadata={"help": "tasks adapted together in evaluation"})
    env_device: EnvDevice = env_device_field()

    def __post_init__(self) -> None:
        check_positive(self, ("iterations", "meta_batch", "trajectories", "max_kl", "cg_iters", "ls_steps",
                              "ppo_epochs", "meta_lr", "init_std", "eval_batch"))
        if not 0.0 < self.ls_backtrack < 1.0:
            raise ValueError(f"--ls-backtrack must lie in (0, 1), got {self.ls_backtrack}")
        check_non_negative(self, ("inner_steps", "eval_inner_steps", "inner_lr", "cg_damping"))
        check_positive(self, ("ppo_clip",))
        if self.meta_sgd and self.inner_steps == 0:
            raise ValueError("--meta-sgd learns inner step sizes, so it needs --inner-steps >= 1")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("--gamma and --gae-lambda must lie in [0, 1]")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"--hidden-sizes must be positive widths, got {self.hidden_sizes}")


class MLPPolicy(nn.Module):
    """An MLP (ReLU, as in the MAML paper) from observations to distribution parameters:
    logits for discrete actions, ``[mean, log_std]`` for Gaussian ones (a state-independent
    ``log_std`` that is adapted with the rest)."""

    def __init__(self, obs_dim: int, act_dim: int, discrete: bool, hidden: Sequence[int], init_std: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, act_dim)
        nn.init.orthogonal_(self.head.weight, 0.01)
        nn.init.zeros_(self.head.bias)
        self.discrete = discrete
        self.log_std = None if discrete else nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(obs))
        if self.log_std is None:
            return out
        return ActionDistribution.gaussian_params(out, self.log_std)

    def forward_tasks(self, params: Params, obs: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with one parameter set per task: every tensor of ``params`` and
        ``obs[tasks, ..., obs_dim]`` has a leading task dimension. Batched matrix products
        (``baddbmm``), so plain autograd differentiates it efficiently to any order."""
        tasks, inner = obs.shape[0], obs.shape[1:-1]
        h = obs.reshape(tasks, -1, obs.shape[-1])
        layers = [name for name, m in self.body.named_children() if isinstance(m, nn.Linear)]
        for name in layers:
            w, b = params[f"body.{name}.weight"], params[f"body.{name}.bias"]
            h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)))
        out = torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"].transpose(1, 2))
        if self.log_std is not None:
            out = torch.cat([out, params["log_std"].unsqueeze(1).expand_as(out)], dim=-1)
        return out.reshape(tasks, *inner, out.shape[-1])


class MLPTrialPolicy:
    """The acting side of :class:`MLPPolicy` for :func:`~metarl.rl.rollout.collect`: ``m``
    tasks with ``n`` trajectories each, task-major in the batched env; ``params`` shared or
    one set per task. :attr:`last` keeps each step's encoded observation, action,
    distribution parameters and log-probability."""

    def __init__(self, agent: MAMLPG, params: Params, per_task: bool, tasks: int, trajectories: int,
                 generator: torch.Generator):
        self.agent, self.params, self.per_task = agent, params, per_task
        self.m, self.n, self.generator = tasks, trajectories, generator
        self.last: dict[str, torch.Tensor] = {}

    def begin_trial(self, num_envs: int) -> None:
        """Nothing to forget: the policy does not adapt within a trajectory."""

    def act(self, obs_np: np.ndarray) -> np.ndarray:
        codec = self.agent.codec
        obs = codec.encode_obs(obs_np)
        d = self.agent.dist_params(self.params, obs.view(self.m, self.n, -1), self.per_task).reshape(self.m * self.n, -1)
        action, logp = self.agent.dist.sample(d, self.generator)
        self.last = {"obs": obs, "actions": action, "dist": d, "logp": logp}
        return codec.to_env(action, tensor=isinstance(obs_np, torch.Tensor))

    def observe(self, actions: np.ndarray, rewards: np.ndarray, dones: np.ndarray, active: np.ndarray,
                next_obs: np.ndarray) -> None:
        """Nothing to learn within a trajectory."""


@dataclasses.dataclass
class Rollout:
    """Trajectories of a meta-batch, task-major: ``[tasks, steps, trajectories, ...]``."""

    obs: torch.Tensor
    actions: torch.Tensor
    dist: torch.Tensor  # distribution parameters of the sampling policy
    logp: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor  # False after a trajectory's end
    episode_returns: np.ndarray  # [tasks, trajectories], undiscounted
    env_steps: int
    advantages: torch.Tensor | None = None

    def batch(self) -> tuple[torch.Tensor, ...]:
        """What the inner loss reads, per task (the leading dimension)."""
        assert self.advantages is not None
        return self.obs, self.actions, self.logp, self.advantages, self.mask.float()


class MAMLPG(InnerLoopAgent, Agent):
    """MAML policy gradient (Finn et al. 2017) with TRPO or PPO outer updates and Meta-SGD."""

    name: ClassVar[str] = "maml_pg"
    config_class: ClassVar[type] = MAMLPGConfig
    kind: ClassVar[str] = "rl"
    default_env: ClassVar[str] = "metarl/Nav2D-v0"
    amp_refusal: ClassVar[str | None] = (
        "TRPO's conjugate gradient and KL line search need the Fisher-vector products to full precision, "
        "and its small policies gain nothing from bfloat16")
    config: MAMLPGConfig

    def __init__(self, config: MAMLPGConfig, family: RLFamily[Any], seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        self.family: RLFamily[Any] = family
        # Under torchrun each process adapts to its share of the meta-batch (core/distributed.py).
        self.local_batch = shard(config.meta_batch, "--meta-batch")
        self._envs: dict[int, TaskVectorEnv[Any]] = {}
        self.env_device = resolve_env_device(config.env_device, self.device, family)
        self.codec = SpaceCodec(family.observation_space, family.action_space, self.device)
        # Per inner step and after: obs, action, distribution, log-prob, reward and mask of every step.
        rows = self.local_batch * config.trajectories * family.max_episode_steps * (config.inner_steps + 1)
        # Training and evaluation envs live side by side during an evaluation.
        env_bytes, env_note = family.env_memory_note((self.local_batch + config.eval_batch) * config.trajectories)
        check_memory(4.0 * rows * (self.codec.obs_dim + 4 * self.codec.act_dim + 4) + env_bytes,
                     f"--meta-batch {config.meta_batch} (and --eval-batch {config.eval_batch}) x --trajectories "
                     f"{config.trajectories} (episodes of {family.max_episode_steps} steps{env_note})")
        self.dist = ActionDistribution.for_space(family.action_space)
        discrete = self.dist.discrete
        with torch_seeded(seed):
            self.policy = MLPPolicy(self.codec.obs_dim, self.codec.act_dim, discrete, config.hidden_sizes,
                                    config.init_std).to(self.device)
        self.step_sizes: StepSizes | None = None
        if config.meta_sgd:
            self.step_sizes = StepSizes(params_of(self.policy), config.inner_lr, config.inner_steps,
                                        config.per_step_lr).to(self.device)
        self.optimizer = (torch.optim.Adam(self.meta_parameters(), lr=config.meta_lr) if config.outer == "ppo" else None)
        self.streams = TrainingStreams(seed, self.device, world().rank)
        self.task_rng, self.env_rng, self.generator = self.streams.task_rng, self.streams.env_rng, self.streams.generator
        self.iterations = 0
        self.env_steps = 0

    # -- parameters -------------------------------------------------------------------------

    def meta_parameters(self) -> list[torch.Tensor]:
        """What the outer loop learns: the initial policy parameters and any step sizes."""
        extra: list[torch.Tensor] = list(self.step_sizes.parameters()) if self.step_sizes is not None else []
        return [*self.policy.parameters(), *extra]

    def step_size(self, step: int) -> Any:
        """Inner step size(s) of step ``step`` (the learned ones reuse their last set)."""
        return self.step_sizes.at(step) if self.step_sizes is not None else self.config.inner_lr

    def progress(self) -> float:
        return min(1.0, self.iterations / self.config.iterations)

    # -- sampling ---------------------------------------------------------------------------

    def _env(self, num_envs: int) -> TaskVectorEnv[Any]:
        if num_envs not in self._envs:
            self._envs[num_envs] = make_vec_env(self.family, num_envs, autoreset_mode=AutoresetMode.SAME_STEP,
                                                device=self.env_device)
        return self._envs[num_envs]

    def dist_params(self, params: Params, obs: torch.Tensor, per_task: bool) -> torch.Tensor:
        """Distribution parameters for ``obs[tasks, ..., obs_dim]``; ``params`` per task or shared."""
        if per_task:
            return self.policy.forward_tasks(params, obs)
        return functional_call(self.policy, params, (obs,))

    @torch.no_grad()
    def rollout(self, tasks: Sequence[Task], params: Params, per_task: bool, trajectories: int,
                generator: torch.Generator, env_seed: int) -> Rollout:
        """``trajectories`` episodes in each task, all stepping in one batched env.

        ``params`` are shared (``per_task=False``) or carry a leading task dimension.
        """
        m, n = len(tasks), trajectories
        env = self._env(m * n)
        env.set_tasks([task for task in tasks for _ in range(n)])
        policy = MLPTrialPolicy(self, params, per_task, m, n, generator)
        trials = collect(env, policy, 1, self.family.max_episode_steps, env_seed, record=lambda: policy.last,
                         device=self.device)

        def task_major(x: torch.Tensor) -> torch.Tensor:  # [steps, m * n, ...] -> [m, steps, n, ...]
            return x.view(x.shape[0], m, n, *x.shape[2:]).transpose(0, 1).contiguous()

        rec = {k: task_major(v) for k, v in trials.records.items()}
        return Rollout(obs=rec["obs"], actions=rec["actions"], dist=rec["dist"], logp=rec["logp"],
                       rewards=rec["rewards"], mask=rec["active"], episode_returns=trials.returns[:, 0].reshape(m, n),
                       env_steps=trials.env_steps)

    def add_advantages(self, ro: Rollout) -> None:
        """GAE on the per-task linear feature baseline, normalised within each task."""
        cfg = self.config
        m, steps, n = ro.rewards.shape
        time_major = ro.rewards.transpose(0, 1).reshape(steps, m * n)
        no_dones = torch.zeros_like(time_major)
        returns = discounted_returns(time_major, no_dones, cfg.gamma).view(steps, m, n).transpose(0, 1)
        values = linear_feature_baseline(ro.obs, returns, ro.mask) * ro.mask
        values_tm = values.transpose(0, 1).reshape(steps, m * n)
        adv, _ = gae(time_major, values_tm, no_dones, torch.zeros_like(time_major[0]), cfg.gamma, cfg.gae_lambda)
        adv = adv.view(steps, m, n).transpose(0, 1)
        mask = ro.mask
        mean = per_task_mean(adv, mask).view(m, 1, 1)
        std = per_task_mean((adv - mean) ** 2, mask).sqrt().view(m, 1, 1)
        ro.advantages = ((adv - mean) / (std + 1e-8)) * mask

    def _inner_loss(self, forward: Any, b: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Per-task REINFORCE losses ``[tasks]`` (importance-weighted form: equal at the
        sampling policy, and the form ProMP differentiates twice)."""
        obs, actions, old_logp, adv, mask = b
        ratio = torch.exp(self.dist.log_prob(forward(obs), actions) - old_logp)
        return -per_task_mean(ratio * adv, mask)

    def adapt(self, params: Params, ro: Rollout, step: int, per_task: bool, first_order: bool) -> Params:
        """One inner policy-gradient step per task on that task's trajectories ``ro``."""
        return adapt_step_tasks(self.policy.forward_tasks, params, self._inner_loss, ro.batch(), self.step_size(step),
                                ro.obs.shape[0], first_order, per_task_params=per_task)

    def sample_adaptation(self, tasks: Sequence[Task], steps: int, trajectories: int,
                          generator: torch.Generator, env_rng: np.random.Generator) -> tuple[list[Rollout], Rollout]:
        """Sample with ``theta``, adapt, sample again, ``steps`` times; return the rollouts
        used for adaptation and the one after the last step (no graph kept)."""
        params: Params = {k: v.detach() for k, v in params_of(self.policy).items()}
        pre: list[Rollout] = []
        for j in range(steps + 1):
            ro = self.rollout(tasks, params, j > 0, trajectories, generator, int(env_rng.integers(2**31)))
            if j == steps:
                return pre, ro
            self.add_advantages(ro)
            pre.append(ro)
            with torch.no_grad():
                params = {k: v.detach() for k, v in self.adapt(params, ro, j, j > 0, first_order=True).items()}
        raise AssertionError("unreachable")

    # -- meta-objective ---------------------------------------------------------------------

    def post_dist(self, pre: list[Rollout], post: Rollout) -> torch.Tensor:
        """Distribution parameters on the post-adaptation trajectories, as a function of
        ``theta`` (and step sizes) through the inner steps on ``pre``."""
        # All named parameters, not params_of's trainable ones: under torch.func transforms
        # the swapped-in tensors do not require grad.
        params: Params = dict(self.policy.named_parameters())
        for j, ro in enumerate(pre):
            params = self.adapt(params, ro, j, j > 0, self.config.first_order)
        return self.dist_params(params, post.obs, per_task=bool(pre))

    def objective(self, pre: list[Rollout], post: Rollout, clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Post-adaptation loss and mean KL from the sampling policies, both as functions
        of ``theta`` (and step sizes) through the inner steps; ``clip`` for PPO's objective."""
        d = self.post_dist(pre, post)
        logp = self.dist.log_prob(d, post.actions)
        assert post.advantages is not None
        ratio = torch.exp(logp - post.logp)
        surrogate = ratio * post.advantages
        if clip is not None:
            surrogate = torch.min(surrogate, ratio.clamp(1 - clip, 1 + clip) * post.advantages)
        loss = -per_task_mean(surrogate, post.mask).mean()
        kl = per_task_mean(self.dist.kl(post.dist, d), post.mask).mean()
        return loss, kl

    def gauss_newton_fvp(self, pre: list[Rollout], post: Rollout, damping: float) -> Any:
        """``v -> (J^T M J + damping) v``: the Hessian of the mean KL at the sampling policy.

        ``J`` is the Jacobian of the post-adaptation distribution parameters ``d`` in the
        meta-parameters (through the inner steps) and ``M`` the KL's Hessian in ``d``.
        Because the KL's gradient in ``d`` is zero at the sampling policy, this equals the
        double-backward Hessian of the KL exactly, without its third-order terms. ``J^T u``
        is one reverse pass through the retained graph of ``d``; ``J v`` is the reverse
        pass of the (linear in ``w``) product ``J^T w``, differentiated in ``w``.
        """
        params = self.meta_parameters()
        d = self.post_dist(pre, post)
        w = torch.zeros_like(d, requires_grad=True)
        jt_w = torch.autograd.grad(d, params, w, create_graph=True)
        m = post.mask.to(post.dist.dtype)
        weight = (m / (m.sum((1, 2), keepdim=True).clamp_min(1.0) * m.shape[0])).unsqueeze(-1)
        sizes = [p.numel() for p in params]

        def fvp(v: torch.Tensor) -> torch.Tensor:
            pieces = [t.view_as(p) for t, p in zip(v.split(sizes), params, strict=True)]
            (jv,) = torch.autograd.grad(jt_w, w, pieces, retain_graph=True)
            grads = torch.autograd.grad(d, params, self.dist.kl_hessian_vector(post.dist, jv) * weight,
                                        retain_graph=True)
            return torch.cat([g.reshape(-1) for g in grads]) + damping * v

        return fvp

    def train_iteration(self) -> IterationStats:
        cfg = self.config
        start = time.perf_counter()
        tasks = self.family.sample_tasks(cfg.meta_batch, "train", self.task_rng)[own_slice(cfg.meta_batch)]
        pre, post = self.sample_adaptation(tasks, cfg.inner_steps, cfg.trajectories, self.generator, self.env_rng)
        self.add_advantages(post)
        sampled = time.perf_counter()
        scalars = self.update(pre, post)
        env_steps = int(all_reduce_sum(torch.tensor(float(sum(r.env_steps for r in pre) + post.env_steps),
                                                    dtype=torch.float64)).item())
        end = time.perf_counter()
        scalars.update({"time/sample_seconds": sampled - start, "time/update_seconds": end - sampled})
        self.iterations += 1
        self.env_steps += env_steps
        curve = self._curve([*pre, post], cfg.inner_steps)
        scalars = mean_scalars({**scalars, "train/return_after": float(curve.curve[:, -1].mean())})
        return IterationStats(env_steps, scalars, curve, headline={"return": scalars["train/return_after"]})

    def update(self, pre: list[Rollout], post: Rollout) -> dict[str, float]:
        """The outer update from this process's adaptation rollouts ``pre`` and ``post`` (with
        advantages); under data parallelism every process's share enters the step, so N
        processes with a share each take the step one process takes on all the tasks."""
        cfg = self.config
        params = self.meta_parameters()
        scalars: dict[str, float] = {}
        if cfg.outer == "trpo":
            fvp = self.gauss_newton_fvp(pre, post, cfg.cg_damping) if cfg.fvp == "gauss-newton" else None
            stats: TRPOStats = trpo_step(params, lambda: self.objective(pre, post), cfg.max_kl, cfg.cg_iters,
                                         cfg.cg_damping, cfg.ls_backtrack, cfg.ls_steps, fvp=fvp,
                                         reduce=all_reduce_mean if world().size > 1 else None)
            scalars.update({"train/outer_loss": stats.loss_before, "train/outer_loss_after": stats.loss_after,
                            "train/kl": stats.kl, "train/step_fraction": stats.step_fraction,
                            "train/grad_norm": stats.grad_norm})
        else:
            assert self.optimizer is not None
            for _ in range(cfg.ppo_epochs):
                loss, kl = self.objective(pre, post, clip=cfg.ppo_clip)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                all_reduce_grads(params)  # the mean over tasks: every process has as many
                self.optimizer.step()
            scalars.update({"train/outer_loss": float(loss.detach()), "train/kl": float(kl.detach())})
        if pre:
            with torch.no_grad():
                scalars["train/inner_loss"] = float(self._inner_loss(lambda o: self.policy(o), pre[0].batch()).mean())
        if self.step_sizes is not None:
            lrs = self.step_sizes.flat()
            scalars.update({"train/step_size_mean": float(lrs.mean()), "train/step_size_std": float(lrs.std()),
                            "train/step_size_min": float(lrs.min()), "train/step_size_max": float(lrs.max())})
        if not self.dist.discrete:
            assert self.policy.log_std is not None
            scalars["train/policy_std"] = float(self.policy.log_std.detach().exp().mean())
        return scalars

    @staticmethod
    def _curve(rollouts: list[Rollout], steps: int) -> EvalResult:
        returns = np.stack([r.episode_returns.mean(axis=1) for r in rollouts], axis=1)  # [tasks, steps + 1]
        return EvalResult("step", list(range(steps + 1)), "return", returns, f"return_step_{steps}", returns[:, -1],
                          extra={"inner_steps": steps})

    # -- evaluation -------------------------------------------------------------------------

    def default_test_steps(self) -> int:
        return self.config.eval_inner_steps

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Adapt to each task with 0..N inner steps, ``trajectories`` fresh episodes per step;
        the curve holds the mean return after each step."""
        steps = self.test_steps()
        generator = torch_generator(seed, self.device)
        env_rng = stream(seed, DATA_KEY)
        curves = []
        for start in range(0, len(tasks), self.config.eval_batch):
            chunk = tasks[start : start + self.config.eval_batch]
            pre, post = self.sample_adaptation(chunk, steps, self.config.trajectories, generator, env_rng)
            curves.append(self._curve([*pre, post], steps).curve)
        for n in list(self._envs):  # evaluation envs are not needed for training
            if n != self.local_batch * self.config.trajectories:
                self._envs.pop(n).close()
        curve = np.concatenate(curves)
        return EvalResult("step", list(range(steps + 1)), "return", curve, f"return_step_{steps}", curve[:, -1],
                          extra={"inner_steps": steps, "meta_sgd": self.config.meta_sgd,
                                 "trajectories_per_step": self.config.trajectories})

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "step_sizes": self.step_sizes.state_dict() if self.step_sizes is not None else None,
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "iterations": self.iterations,
            "env_steps": self.env_steps,
            **self.streams.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.step_sizes is not None:
            if state.get("step_sizes") is None:
                raise ValueError("checkpoint has no learned step sizes, but this config has --meta-sgd")
            self.step_sizes.load_state_dict(state["step_sizes"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.iterations = int(state.get("iterations", 0))
        self.env_steps = int(state.get("env_steps", 0))
        self.streams.load_state_dict(state)
