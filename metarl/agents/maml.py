"""Supervised MAML (Finn et al. 2017) and Meta-SGD (Li et al. 2017) on the shared inner loop.

For each task of a meta-batch the initial parameters ``theta`` take ``inner_steps``
gradient steps on the support set (eq. 1 of the MAML paper; with ``--meta-sgd`` the step
sizes are learned elementwise, eq. 3 of Meta-SGD); the meta-loss is the query loss of
the adapted parameters, averaged over tasks, and Adam updates ``theta`` (and the step
sizes) through the adaptation: second order by default, first order with
``--first-order``. With ``--anil`` (Raghu et al. 2020, "almost no inner loop") only the
output layer adapts; the inner gradients then stop at the features, and the body learns
through the query loss: on 2 CPU cores several times cheaper per meta-batch
(``experiments/maml_speed.py``). All tasks adapt at once (``vmap``, :mod:`metarl.core.inner_loop`).

The model follows the family: an MLP with two hidden layers of 40 ReLU units for
regression (the MAML paper's sinusoid net) and the Conv-4 of the MAML paper for image
classification (four blocks of 3x3 conv with 64 filters, batch norm and ReLU, downsampling
by stride 2 as in its Omniglot net or by 2x2 max-pooling with ``--no-strided``, then a
linear head), built on the family's ``input_shape`` with ``num_outputs`` (ways) outputs.
Batch norm always uses the statistics of the current task's batch, as in MAML.

The models are in :mod:`metarl.fewshot.models`, the episode plumbing in
:mod:`metarl.fewshot.agent` and the per-task losses in :mod:`metarl.fewshot.losses`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.core.agent import EvalResult, InnerLoopAgent, IterationStats
from metarl.core.checks import check_non_negative, check_positive
from metarl.core.inner_loop import StepSizes, adapt_batch, forward_with, params_of
from metarl.core.seeding import torch_seeded
from metarl.core.task import Task
from metarl.fewshot.agent import FewShotAgent, FewShotLearnerConfig
from metarl.fewshot.episode import Episode, episode_ways
from metarl.fewshot.evaluation import one_two_five
from metarl.fewshot.losses import metric_name, task_loss, task_metric
from metarl.fewshot.models import predictor


@dataclasses.dataclass(frozen=True)
class MAMLConfig(FewShotLearnerConfig):
    """Supervised MAML / Meta-SGD. Defaults: the MAML paper's sinusoid setup (section 5.1); the
    number of shots (and query examples) comes from the family's ``--shots`` and ``--queries``."""

    meta_batch: int = dataclasses.field(default=25, metadata={"help": "tasks per meta-update"})
    inner_steps: int = dataclasses.field(default=1, metadata={"help": "inner gradient steps in training"})
    inner_lr: float = dataclasses.field(default=0.01, metadata={"help": "inner step size (Meta-SGD: its initial value); the MAML paper: 0.01 sinusoid, 0.4 Omniglot"})
    meta_lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate of the meta-update"})
    lr_decay: bool = dataclasses.field(default=False, metadata={"help": "decay the meta learning rate to 0 (cosine) over training"})
    first_order: bool = dataclasses.field(default=False, metadata={"help": "first-order MAML: drop the Hessian term"})
    anil: bool = dataclasses.field(
        default=False, metadata={"help": "ANIL (Raghu et al. 2020): adapt only the output layer in the inner loop (second order through it)"})
    meta_sgd: bool = dataclasses.field(default=False, metadata={"help": "Meta-SGD: learn a step size per parameter"})
    per_step_lr: bool = dataclasses.field(default=False, metadata={"help": "with --meta-sgd, learn separate step sizes for each inner step"})
    eval_inner_steps: int = dataclasses.field(default=0, metadata={"help": "inner steps in evaluation, the curve's length (0: --inner-steps)"})
    hidden: tuple[int, ...] = dataclasses.field(default=(40, 40), metadata={"help": "hidden layer sizes of the MLP (regression; none: a linear model)"})
    filters: int = dataclasses.field(default=64, metadata={"help": "filters per Conv-4 layer (image classification)"})
    strided: bool = dataclasses.field(
        default=True, metadata={"help": "Conv-4 downsamples by stride 2 (the MAML paper's Omniglot net); off: max-pooling"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("inner_steps", "meta_lr", "filters"))
        check_non_negative(self, ("eval_inner_steps", "inner_lr"))
        if self.per_step_lr and not self.meta_sgd:
            raise ValueError("--per-step-lr learns step sizes, so it needs --meta-sgd")
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"--hidden layer sizes must be > 0, got {self.hidden}")

    @property
    def test_steps(self) -> int:
        """Inner steps in evaluation."""
        return self.eval_inner_steps or self.inner_steps


def curve_points(steps: int) -> list[int]:
    """The inner steps an evaluation curve reports: every step up to 10, then 1-2-5 steps
    (20, 50, 100, ...) and the last, so that long adaptation (the scratch baseline) is cheap."""
    return list(range(steps + 1)) if steps <= 10 else [0, *one_two_five(steps)]


class MAML(InnerLoopAgent, FewShotAgent):
    """Supervised MAML, or Meta-SGD with ``--meta-sgd`` (Finn et al. 2017; Li et al. 2017)."""

    name: ClassVar[str] = "maml"
    config_class: ClassVar[type] = MAMLConfig
    config: MAMLConfig
    amp_refusal: ClassVar[str | None] = (
        "the meta-gradient differentiates through the inner step (a Hessian-vector product scaled by the "
        "inner learning rate), where bfloat16's rounding is of the order of the signal")

    def __init__(self, config: MAMLConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        with torch_seeded(seed):
            self.model = predictor(self.family, config.hidden, config.filters, config.strided).to(self.device)
        params = params_of(self.model)
        # ANIL: only the output layer adapts; the body is meta-learned through the query loss alone.
        self.adapt_names: list[str] | None = head_names(self.model) if config.anil else None
        self.step_sizes: StepSizes | None = None
        meta_params = list(params.values())
        if config.meta_sgd:
            adapted = {n: params[n] for n in self.adapt_names} if self.adapt_names is not None else params
            self.step_sizes = StepSizes(adapted, config.inner_lr, config.inner_steps, config.per_step_lr).to(self.device)
            meta_params += list(self.step_sizes.parameters())
        self.optimizer = torch.optim.Adam(meta_params, lr=config.meta_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)

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
                           dataclasses.astuple(episode), steps, lrs, first_order, adapt_names=self.adapt_names,
                           return_all=True, then=then)

    def adapted_losses(self, episode: Episode, steps: int, first_order: bool,
                       points: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Query losses and metrics ``[tasks, len(points)]`` after ``points`` (default 0..steps)
        inner steps of every task of a batched episode. Only the last step's loss carries the
        meta-gradient graph."""
        problem, ways, model = self.problem, self._ways(episode), self.model
        grad_enabled = torch.is_grad_enabled()
        at = list(range(steps + 1)) if points is None else list(points)

        def query_losses(trajectory: list[dict[str, torch.Tensor]], batch: tuple[torch.Tensor, ...]) -> Any:
            qx, qy = batch[2], batch[3]
            losses, metrics = [], []
            for j in at:
                params = trajectory[j]
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
        grad_norm = self.update(meta_loss)
        self.scheduler.step()
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

    def default_test_steps(self) -> int:
        return self.config.test_steps

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        """Adapt to each task with 0..``test_steps`` inner steps; the curve holds the query
        metric after each, the score the metric after ``test_steps``."""
        steps = self.test_steps()
        points = curve_points(steps)
        curves = []
        with torch.no_grad():  # the inner gradients are still taken (torch.func.grad ignores no_grad)
            for episode in self.eval_episodes(tasks, seed):
                curves.append(self.adapted_losses(episode, steps, first_order=True, points=points)[1].cpu().numpy())
        curve = np.concatenate(curves).astype(np.float64)
        name = metric_name(self.problem)
        return EvalResult("step", points, name, curve, f"{name}_step_{steps}", curve[:, -1],
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

    def checkpointed(self) -> dict[str, Any]:
        steps = {"step_sizes": self.step_sizes} if self.step_sizes is not None else {}
        return {"model": self.model, **steps, "optimizer": self.optimizer, "scheduler": self.scheduler}


def head_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters of the model's last linear layer (its output layer)."""
    linear = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise ValueError(f"--anil adapts the output layer, but {type(model).__name__} has no linear layer")
    return [n for n, _ in model.named_parameters() if n.rpartition(".")[0] == linear[-1]]
