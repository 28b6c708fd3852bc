"""Supervised MAML (Finn et al. 2017) and Meta-SGD (Li et al. 2017) on the shared inner loop.

For each task of a meta-batch the initial parameters ``theta`` take ``inner_steps``
gradient steps on the support set (eq. 1 of the MAML paper; with ``--meta-sgd`` the step
sizes are learned elementwise, eq. 3 of Meta-SGD); the meta-loss is the query loss of
the adapted parameters, averaged over tasks, and Adam updates ``theta`` (and the step
sizes) through the adaptation: second order by default, first order with
``--first-order``. All tasks adapt at once (``vmap``, :mod:`metarl.inner_loop`).

The model follows the family: an MLP with two hidden layers of 40 ReLU units for
regression (the MAML paper's sinusoid net) and the Conv-4 of the MAML paper for image
classification (four blocks of 3x3 conv with 64 filters, batch norm and ReLU, downsampling
by stride 2 as in its Omniglot net or by 2x2 max-pooling with ``--no-strided``, then a
linear head), built on the family's ``input_shape`` with ``num_outputs`` (ways) outputs.
Batch norm always uses the statistics of the current task's batch, as in MAML.

This module also holds what the supervised agents of ``agents/`` share (the models, the
per-task losses and metrics, the episode plumbing), used by ``agents/siamese.py`` and
``agents/lstm_learner.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from metarl.agent import Agent, EvalResult, IterationStats
from metarl.inner_loop import StepSizes, adapt_batch, forward_with, params_of
from metarl.supervised import Episode, SupervisedFamily
from metarl.task import Task, TaskFamily, task_rng

# --------------------------------------------------------------------------------------
# Models shared by the supervised agents


class TaskBatchNorm2d(nn.Module):
    """Batch norm over the current batch only (no running statistics), as MAML uses it,
    written with primitive ops.

    ``nn.BatchNorm2d(track_running_stats=False)`` computes the same values, but in
    PyTorch 2.13 its second derivative is wrong under ``torch.func.vmap``: the meta-gradient
    of a vmapped task batch differed from a loop over the same tasks (the loss values
    agreed; compare pytorch/functorch#534). These primitives differentiate correctly to any
    order under any transform (``tests/test_maml.py`` pins it).
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False, keepdim=True)
        scale = torch.rsqrt(var + self.eps) * self.weight[:, None, None]  # per channel: one product on x below
        return x * scale + (self.bias[:, None, None] - mean * scale)


class SpatialMean(nn.Module):
    """Average over the spatial dimensions: ``[N, C, H, W] -> [N, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def conv4(input_shape: Sequence[int], filters: int = 64, strided: bool = False) -> tuple[nn.Sequential, int]:
    """The Conv-4 embedding of few-shot learning (Vinyals et al. 2016; MAML, Finn et al. 2017).

    Four blocks of 3x3 conv (``filters``), batch norm and ReLU. They downsample by 2x2
    max-pooling and the last map is flattened (``filters`` features for 28x28 inputs,
    ``25 * filters`` for 84x84), or with ``strided`` by stride-2 convolutions with the last
    map averaged (``filters`` features): the MAML paper's Omniglot net, about 4x cheaper.
    Built on ``input_shape`` ``(C, H, W)``; returns the module and its output size.
    """
    if len(input_shape) != 3:
        raise ValueError(f"Conv-4 needs image inputs shaped (C, H, W), got input_shape {tuple(input_shape)}")
    h, w = int(input_shape[1]), int(input_shape[2])
    if min(h, w) < 16:
        raise ValueError(f"Conv-4 halves the image four times; {h}x{w} inputs are too small (need >= 16x16)")
    layers: list[nn.Module] = []
    channels = int(input_shape[0])
    for _ in range(4):
        layers += [nn.Conv2d(channels, filters, 3, stride=2 if strided else 1, padding=1), TaskBatchNorm2d(filters),
                   nn.ReLU()]
        if not strided:
            layers.append(nn.MaxPool2d(2))
        channels = filters
    net = nn.Sequential(*layers, SpatialMean() if strided else nn.Flatten())
    with torch.no_grad():
        size = net(torch.zeros(2, *input_shape)).shape[1]
    return net, int(size)


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def encoder(family: SupervisedFamily, hidden: Sequence[int], filters: int, strided: bool = False) -> tuple[nn.Module, int]:
    """The family's input encoder: Conv-4 for images ``(C, H, W)``, else an MLP (with a
    ReLU on its output); returns it and its feature size."""
    if len(family.input_shape) == 3:
        return conv4(family.input_shape, filters, strided)
    if not hidden:
        raise ValueError("the MLP encoder needs at least one hidden layer size")
    dims = [math.prod(family.input_shape), *hidden]
    return nn.Sequential(mlp(dims), nn.ReLU()), dims[-1]


def predictor(family: SupervisedFamily, hidden: Sequence[int], filters: int, strided: bool = False) -> nn.Module:
    """The family's prediction model: an MLP (``hidden`` units) for vector inputs, Conv-4
    and a linear head for images; ``num_outputs`` outputs."""
    if len(family.input_shape) == 3:
        body, size = conv4(family.input_shape, filters, strided)
        return nn.Sequential(body, nn.Linear(size, family.num_outputs))
    return mlp([math.prod(family.input_shape), *hidden, family.num_outputs])


# --------------------------------------------------------------------------------------
# Per-task losses and metrics, and the episode plumbing shared by the supervised agents


def episode_ways(episode: Episode) -> int:
    """Classes in a classification episode (labels are remapped to 0 .. ways-1)."""
    return int(episode.support_y.max()) + 1


def task_loss(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss over the last two dims' examples: MSE, or cross-entropy of logits.

    ``out`` is ``[..., n, outputs]``; ``y`` is ``[..., n, outputs]`` (regression) or
    ``[..., n]`` integer labels. Leading dims are kept (one loss per task).
    """
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
    return ce.view(y.shape).mean(-1)


def task_metric(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reported metric per task: MSE (regression) or accuracy (classification)."""
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    return (out.argmax(-1) == y).float().mean(-1)


def within_class_rank(y: torch.Tensor, ways: int) -> torch.Tensor:
    """Index of each example among the examples of its class in ``y`` ``[tasks, n]`` (0 for the first)."""
    return F.one_hot(y, ways).cumsum(1).gather(-1, y.unsqueeze(-1)).squeeze(-1) - 1


def metric_name(problem: str) -> str:
    """``query_mse`` or ``query_accuracy``: the curve name of supervised evaluations."""
    return "query_mse" if problem == "regression" else "query_accuracy"


class FewShotAgent(Agent):
    """Base of the supervised agents here: training and evaluation episodes, seeded streams.

    The test protocol is the family's: its ``shots`` and ``queries`` (per class for
    classification) shape evaluation episodes, and training uses them unless the config's
    ``train_shots`` / ``train_queries`` are set. ``self.task_rng`` draws training tasks and
    ``self.data_rng`` their examples; both are in :meth:`rng_state`, so a resumed run
    continues the same streams.
    """

    kind: ClassVar[str] = "supervised"
    default_env: ClassVar[str] = "metarl/Sinusoid-v0"

    def __init__(self, config: Any, family: TaskFamily, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        assert isinstance(family, SupervisedFamily)
        self.family: SupervisedFamily = family
        self.problem = family.problem
        self.eval_shots = int(getattr(family, "shots", 0) or config.train_shots)
        self.eval_queries = int(getattr(family, "queries", 0) or config.train_queries)
        self.shots = int(config.train_shots or self.eval_shots)
        self.queries = int(config.train_queries or self.eval_queries)
        if not (self.shots and self.queries):
            raise ValueError(f"{type(family).__name__} has no 'shots'/'queries' arguments: give --train-shots and "
                             f"--train-queries")
        self.task_rng = task_rng(seed, "train")
        self.data_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
        self.iterations = 0
        self._curves: list[EvalResult] = []

    def progress(self) -> float:
        return min(1.0, self.iterations / self.config.iterations)

    def pooled_curve(self, result: EvalResult) -> EvalResult | None:
        """The training tasks' curve pooled over the last ``curve_every`` iterations, once
        every ``curve_every`` iterations (and at the end); ``None`` in between.

        Iterations of these agents take milliseconds, and the trainer draws a figure for
        every curve it gets: one per iteration would cost more than the training.
        """
        self._curves.append(result)
        if self.iterations % self.config.curve_every and self.progress() < 1.0:
            return None
        pooled = dataclasses.replace(result, curve=np.concatenate([c.curve for c in self._curves]),
                                     scores=np.concatenate([c.scores for c in self._curves]))
        self._curves = []
        return pooled

    def train_episodes(self) -> Episode:
        """A batched episode of ``meta_batch`` fresh training tasks, on the device."""
        tasks = self.family.sample_tasks(self.config.meta_batch, "train", self.task_rng)
        return self.family.sample_episodes(tasks, self.shots, self.queries, self.data_rng).to(self.device)

    def eval_episodes(self, tasks: Sequence[Task], seed: int) -> list[Episode]:
        """Evaluation episodes (the family's shots and queries) of ``tasks``, in chunks of
        ``eval_batch`` tasks, drawn from a stream seeded by ``seed``."""
        size = self.config.eval_batch
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        return [self.family.sample_episodes(tasks[i:i + size], self.eval_shots, self.eval_queries, rng).to(self.device)
                for i in range(0, len(tasks), size)]

    def as_batch(self, episode: Episode) -> tuple[Episode, bool]:
        """A batched episode on the device, and whether the input was a single episode."""
        if self.problem != "classification":
            raise TypeError(f"classify() needs a classification family; {self.family.family_id or self.family} is regression")
        single = episode.support_x.dim() == len(self.family.input_shape) + 1
        batch = Episode.stack([episode]) if single else episode
        ways = episode_ways(batch)
        if ways > self.family.num_outputs:
            raise ValueError(
                f"the episode has {ways} classes but the model was trained for {self.family.num_outputs}; "
                f"train with the family's ways set to at least {ways}"
            )
        return batch.to(self.device), single

    def rng_state(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "task_rng": self.task_rng.bit_generator.state,
                "data_rng": self.data_rng.bit_generator.state}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.iterations = int(state.get("iterations", 0))
        if "task_rng" in state:
            self.task_rng.bit_generator.state = state["task_rng"]
            self.data_rng.bit_generator.state = state["data_rng"]


def check_positive(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is not > 0."""
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(config, name)}")


def check_non_negative(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is < 0."""
    for name in names:
        if getattr(config, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(config, name)}")


# --------------------------------------------------------------------------------------
# MAML and Meta-SGD


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """Supervised MAML / Meta-SGD. Defaults: the MAML paper's sinusoid setup (section 5.1); the
    number of shots (and query examples) comes from the family's ``--shots`` and ``--queries``."""

    iterations: int = dataclasses.field(default=20_000, metadata={"help": "meta-iterations (outer updates) to train"})
    meta_batch: int = dataclasses.field(default=25, metadata={"help": "tasks per meta-update"})
    train_shots: int = dataclasses.field(default=0, metadata={"help": "support examples per task (per class) in training (0: the family's shots)"})
    train_queries: int = dataclasses.field(default=0, metadata={"help": "query examples per task (per class) in training (0: the family's queries)"})
    inner_steps: int = dataclasses.field(default=1, metadata={"help": "inner gradient steps in training"})
    inner_lr: float = dataclasses.field(default=0.01, metadata={"help": "inner step size (Meta-SGD: its initial value); the MAML paper: 0.01 sinusoid, 0.4 Omniglot"})
    meta_lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate of the meta-update"})
    lr_decay: bool = dataclasses.field(default=False, metadata={"help": "decay the meta learning rate to 0 (cosine) over training"})
    first_order: bool = dataclasses.field(default=False, metadata={"help": "first-order MAML: drop the Hessian term"})
    meta_sgd: bool = dataclasses.field(default=False, metadata={"help": "Meta-SGD: learn a step size per parameter"})
    per_step_lr: bool = dataclasses.field(default=False, metadata={"help": "with --meta-sgd, learn separate step sizes for each inner step"})
    eval_inner_steps: int = dataclasses.field(default=0, metadata={"help": "inner steps in evaluation, the curve's length (0: --inner-steps)"})
    eval_batch: int = dataclasses.field(default=250, metadata={"help": "evaluation tasks adapted at once"})
    curve_every: int = dataclasses.field(default=100, metadata={"help": "log the training tasks' adaptation curve, pooled over N iterations, every N iterations"})
    hidden: tuple[int, ...] = dataclasses.field(default=(40, 40), metadata={"help": "hidden layer sizes of the MLP (regression; none: a linear model)"})
    filters: int = dataclasses.field(default=64, metadata={"help": "filters per Conv-4 layer (image classification)"})
    strided: bool = dataclasses.field(
        default=True, metadata={"help": "Conv-4 downsamples by stride 2 (the MAML paper's Omniglot net); off: max-pooling"})

    def __post_init__(self) -> None:
        check_positive(self, ("iterations", "meta_batch", "inner_steps", "meta_lr", "eval_batch", "curve_every", "filters"))
        check_non_negative(self, ("train_shots", "train_queries", "eval_inner_steps"))
        if self.per_step_lr and not self.meta_sgd:
            raise ValueError("--per-step-lr learns step sizes, so it needs --meta-sgd")
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"--hidden layer sizes must be > 0, got {self.hidden}")

    @property
    def test_steps(self) -> int:
        """Inner steps in evaluation."""
        return self.eval_inner_steps or self.inner_steps


class MAML(FewShotAgent):
    """Supervised MAML, or Meta-SGD with ``--meta-sgd`` (Finn et al. 2017; Li et al. 2017)."""

    name: ClassVar[str] = "maml"
    config_class: ClassVar[type] = MAMLConfig

    def __init__(self, config: MAMLConfig, family: TaskFamily, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        self.config: MAMLConfig = config
        with torch.random.fork_rng(devices=[]):  # initialise from the seed without touching global state
            torch.manual_seed(seed)
            self.model = predictor(self.family, config.hidden, config.filters, config.strided).to(self.device)
        params = params_of(self.model)
        self.step_sizes: StepSizes | None = None
        meta_params = list(params.values())
        if config.meta_sgd:
            self.step_sizes = StepSizes(params, config.inner_lr, config.inner_steps, config.per_step_lr).to(self.device)
            meta_params += list(self.step_sizes.parameters())
        self.optimizer = torch.optim.Adam(meta_params, lr=config.meta_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.eval_inner_steps: int | None = None  # set by ``metarl.evaluate --inner-steps``

    def _lr_factor(self, iteration: int) -> float:
        if not self.config.lr_decay:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(iteration, self.config.iterations) / self.config.iterations))

    def _support_loss(self, ways: int) -> Any:
        problem = self.problem

        def support_loss(forward: Any, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return task_loss(problem, forward(batch[0])[..., :ways], batch[1])

        return support_loss

    def _ways(self, episode: Episode) -> int:
        return episode_ways(episode) if self.problem == "classification" else self.family.num_outputs

    def adapt_episode(self, episode: Episode, steps: int, first_order: bool, then: Any = None) -> Any:
        """Adapt to every task of a batched episode on its support set: the per-task
        parameters (leading task dimension) after 0, 1, ..., ``steps`` inner steps, or
        ``then(trajectory, (support_x, support_y, query_x, query_y))`` computed per task."""
        lrs: Any = self.step_sizes if self.step_sizes is not None else self.config.inner_lr
        return adapt_batch(self.model, params_of(self.model), self._support_loss(self._ways(episode)),
                           dataclasses.astuple(episode), steps, lrs, first_order, return_all=True, then=then)

    def adapted_losses(self, episode: Episode, steps: int, first_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Query losses and metrics ``[tasks, steps + 1]`` after 0..steps inner steps of every
        task of a batched episode. Only the last step's loss carries the meta-gradient graph."""
        problem, ways, model = self.problem, self._ways(episode), self.model
        grad_enabled = torch.is_grad_enabled()

        def query_losses(trajectory: list[dict[str, torch.Tensor]], batch: tuple[torch.Tensor, ...]) -> Any:
            qx, qy = batch[2], batch[3]
            losses, metrics = [], []
            for j, params in enumerate(trajectory):
                with torch.set_grad_enabled(grad_enabled and j == steps):
                    out = forward_with(model, params)(qx)[..., :ways]
                    losses.append(task_loss(problem, out, qy))
                    metrics.append(task_metric(problem, out.detach(), qy))
            return torch.stack(losses), torch.stack(metrics)

        return self.adapt_episode(episode, steps, first_order, then=query_losses)

    def train_iteration(self) -> IterationStats:
        cfg = self.config
        episode = self.train_episodes()
        losses, metrics = self.adapted_losses(episode, cfg.inner_steps, cfg.first_order)
        meta_loss = losses[:, -1].mean()
        self.optimizer.zero_grad(set_to_none=True)
        meta_loss.backward()
        grad_norm = torch.sqrt(sum((p.grad.detach() ** 2).sum() for g in self.optimizer.param_groups
                                   for p in g["params"] if p.grad is not None))
        self.optimizer.step()
        self.scheduler.step()
        self.iterations += 1
        m = metrics.detach().cpu().numpy().astype(np.float64)
        name = metric_name(self.problem)
        scalars = {
            "train/loss": float(meta_loss.detach()),
            "train/pre_adaptation_loss": float(losses[:, 0].detach().mean()),
            f"train/{name}": float(m[:, -1].mean()),
            "train/meta_grad_norm": float(grad_norm),
            "train/meta_lr": float(self.scheduler.get_last_lr()[0]),
        }
        if self.step_sizes is not None:  # Meta-SGD: where the learned step sizes went
            flat = self.step_sizes.flat()
            scalars.update({"train/step_size_mean": float(flat.mean()), "train/step_size_std": float(flat.std()),
                            "train/step_size_abs_mean": float(flat.abs().mean())})
        curve = EvalResult("step", list(range(cfg.inner_steps + 1)), name, m, f"{name}_step_{cfg.inner_steps}", m[:, -1])
        headline = {"mse" if self.problem == "regression" else "acc": float(m[:, -1].mean())}
        return IterationStats(0, scalars, self.pooled_curve(curve), headline)

    def test_steps(self) -> int:
        """Inner steps in evaluation: ``--inner-steps`` of ``metarl.evaluate``, else the config's."""
        return self.config.test_steps if self.eval_inner_steps is None else self.eval_inner_steps

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Adapt to each task with 0..``test_steps`` inner steps; the curve holds the query
        metric after each, the score the metric after ``test_steps``."""
        steps = self.test_steps()
        curves = []
        with torch.no_grad():  # the inner gradients are still taken (torch.func.grad ignores no_grad)
            for episode in self.eval_episodes(tasks, seed):
                curves.append(self.adapted_losses(episode, steps, first_order=True)[1].cpu().numpy())
        curve = np.concatenate(curves).astype(np.float64)
        name = metric_name(self.problem)
        return EvalResult("step", list(range(steps + 1)), name, curve, f"{name}_step_{steps}", curve[:, -1],
                          extra={"inner_steps": steps, "meta_sgd": self.config.meta_sgd})

    def classify(self, episode: Episode) -> torch.Tensor:
        """Predicted query labels after adapting on the support set (``test_steps`` steps).

        ``episode`` is single (``[n, C, H, W]``) or batched (``[tasks, n, C, H, W]``); the
        result is ``[queries]`` or ``[tasks, queries]`` labels in ``0 .. ways-1``.
        """
        batch, single = self.as_batch(episode)
        model, ways = self.model, episode_ways(batch)

        def predict(trajectory: list[dict[str, torch.Tensor]], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return forward_with(model, trajectory[-1])(b[2])[..., :ways].argmax(-1)

        with torch.no_grad():
            labels = self.adapt_episode(batch, self.test_steps(), first_order=True, then=predict)
        return labels[0] if single else labels

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "step_sizes": self.step_sizes.state_dict() if self.step_sizes is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **self.rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.step_sizes is not None:
            self.step_sizes.load_state_dict(state["step_sizes"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        self.load_rng_state(state)
