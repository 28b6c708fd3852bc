"""The functional inner loop of gradient-based meta-learning (MAML, Meta-SGD), on ``torch.func``.

Parameters are plain dicts of tensors (``{name: tensor}``), so one set of initial
parameters can be adapted to many tasks at once without copying modules. The inner
update is eq. 1 of Finn et al. 2017 (MAML),

    theta'_i = theta - alpha * grad_theta L_Ti(f_theta),

repeated for any number of steps. With Meta-SGD (Li et al. 2017, eq. 3) ``alpha`` is a
learned tensor shaped like each parameter and the product is elementwise; it may also be
learned separately per inner step.

Gradients of the adapted parameters flow back to ``theta`` (and to learned step sizes):
second order by default, like ``torch.autograd.grad(..., create_graph=True)``. With
``first_order=True`` the inner gradient is treated as a constant, which drops exactly the
term ``-alpha * Hessian`` from ``d theta' / d theta`` (first-order MAML, Finn et al. 2017,
section 5.2); learned step sizes still receive their gradient ``-grad L_inner * dL_outer/dtheta'``.

Used by supervised MAML / Meta-SGD (``metarl/agents/maml.py``) and MAML policy gradient
(``metarl/agents/maml_pg.py``). The
inner loss is any function of a forward function and a batch, so the same code adapts a
regression net on a support set or a policy on a REINFORCE surrogate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
"""Named parameters: ``{name: tensor}``, as from ``dict(module.named_parameters())``."""

Forward = Callable[..., Any]
"""``forward(*inputs)``: the model evaluated with a given set of parameters."""

LossFn = Callable[[Forward, Any], torch.Tensor]
"""``loss_fn(forward, batch) -> scalar``, e.g. ``lambda f, b: mse_loss(f(b[0]), b[1])``."""

Model = nn.Module | Callable[..., Any]
"""An ``nn.Module`` (called with :func:`torch.func.functional_call`) or a function
``model(params, *inputs)``."""


def params_of(module: nn.Module) -> Params:
    """The module's trainable parameters as a dict (the tensors themselves, not copies)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def forward_with(model: Model, params: Mapping[str, torch.Tensor]) -> Forward:
    """``forward(*inputs)`` evaluating ``model`` with ``params`` in place of its own."""
    if isinstance(model, nn.Module):
        return lambda *inputs, **kwargs: functional_call(model, dict(params), inputs, kwargs)
    return lambda *inputs, **kwargs: model(params, *inputs, **kwargs)


class StepSizes(nn.Module):
    """Learned inner-loop step sizes (Meta-SGD, Li et al. 2017): one tensor shaped like
    each parameter, initialised to ``init``; optionally a separate set per inner step.

    Parameter names contain dots, which ``nn.ParameterDict`` refuses, so the tensors are
    kept in a ``ParameterList`` in the order of ``names`` (``steps`` blocks when per step).
    """

    def __init__(self, params: Mapping[str, torch.Tensor], init: float, steps: int = 1, per_step: bool = False):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.names = list(params)
        self.per_step = per_step
        self.num_sets = steps if per_step else 1
        self.values = nn.ParameterList(
            nn.Parameter(torch.full_like(params[n].detach(), float(init))) for _ in range(self.num_sets) for n in self.names
        )

    def at(self, step: int) -> Params:
        """The step sizes of inner step ``step`` (steps beyond the learned ones reuse the last set)."""
        block = min(step, self.num_sets - 1) * len(self.names)
        return {n: self.values[block + i] for i, n in enumerate(self.names)}

    def flat(self) -> torch.Tensor:
        """All step sizes in one vector (for logging their mean and spread)."""
        return torch.cat([v.detach().reshape(-1) for v in self.values])


StepSize = float | torch.Tensor | Mapping[str, torch.Tensor]
"""One step's size: a float, a scalar tensor (learnable), or one tensor per parameter."""

StepSizeSpec = StepSize | Sequence[StepSize] | StepSizes
"""A fixed float, a learnable scalar tensor, one learned tensor per parameter (Meta-SGD), a
list of those (one entry per inner step), or a :class:`StepSizes` module."""


def step_size_at(step_sizes: StepSizeSpec, step: int) -> StepSize:
    """The step size(s) of inner step ``step``; a list shorter than the steps reuses its last entry."""
    if isinstance(step_sizes, StepSizes):
        return step_sizes.at(step)
    if isinstance(step_sizes, (int, float)):
        return float(step_sizes)
    if isinstance(step_sizes, torch.Tensor):
        if step_sizes.dim() != 0:
            raise ValueError(f"a tensor step size must be a scalar (use a dict for per-parameter ones), got {tuple(step_sizes.shape)}")
        return step_sizes
    if isinstance(step_sizes, Mapping):
        return step_sizes
    if isinstance(step_sizes, Sequence) and not isinstance(step_sizes, (str, bytes)):
        if not step_sizes:
            raise ValueError("step_sizes is an empty list: give one entry per inner step")
        return step_sizes[min(step, len(step_sizes) - 1)]
    raise TypeError(f"step_sizes must be a float, a scalar tensor, a dict of tensors, a list of those or StepSizes, "
                    f"got {type(step_sizes)}")


def inner_step(params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor], step_size: StepSize) -> Params:
    """One update ``theta - alpha * g`` (Finn et al. 2017, eq. 1); elementwise for a dict of
    step sizes (Meta-SGD, Li et al. 2017, eq. 3). Parameters without a gradient stay put."""
    if isinstance(step_size, Mapping):
        missing = [k for k in grads if k not in step_size]
        if missing:
            raise KeyError(f"no step size for parameter(s) {missing}; give one tensor per adapted parameter")
        return {k: (p - step_size[k] * grads[k]) if k in grads else p for k, p in params.items()}
    return {k: (p - step_size * grads[k]) if k in grads else p for k, p in params.items()}


def adapt(
    model: Model,
    params: Mapping[str, torch.Tensor],
    loss_fn: LossFn,
    batch: Any,
    steps: int,
    step_sizes: StepSizeSpec,
    first_order: bool = False,
    *,
    adapt_names: Iterable[str] | None = None,
    return_all: bool = False,
) -> Params | list[Params]:
    """Adapt ``params`` to one task by ``steps`` gradient steps on ``loss_fn(forward, batch)``.

    Implements the MAML inner loop (Finn et al. 2017, eq. 1) and Meta-SGD's (Li et al.
    2017): ``theta_{j+1} = theta_j - alpha_j * grad L(theta_j)``. The gradient is taken with
    :func:`torch.func.grad`, so this composes with :func:`torch.func.vmap` (see
    :func:`adapt_batch`) and with ordinary autograd: the returned tensors depend on
    ``params`` and on learned step sizes, and ``backward`` through them gives the full
    second-order meta-gradient (as ``create_graph=True`` would).

    Args:
        model: an ``nn.Module`` (evaluated with ``functional_call``) or ``model(params, *inputs)``.
        params: the initial parameters ``theta`` (e.g. :func:`params_of` of the module).
        loss_fn: ``loss_fn(forward, batch) -> scalar``; ``forward(*inputs)`` runs the model
            with the parameters of the current step.
        batch: whatever ``loss_fn`` needs (a support set, trajectories); a pytree of tensors
            when used under ``vmap``.
        steps: number of inner gradient steps (0 returns ``params`` unchanged).
        step_sizes: a float (MAML's fixed alpha), a scalar tensor (a learned alpha), a
            dict of tensors shaped like the parameters (Meta-SGD), a list of those (one per
            step, e.g. learned per step; the last entry is reused for later steps), or a
            :class:`StepSizes` module.
        first_order: treat the inner gradients as constants: the meta-gradient loses exactly
            its Hessian term (first-order MAML).
        adapt_names: adapt only these parameters (the rest stay fixed); default all.
        return_all: return ``[theta_0, theta_1, ..., theta_steps]`` instead of the last.

    Returns:
        The adapted parameters (a new dict), or the list of them at every step.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    current: Params = dict(params)
    names = list(current) if adapt_names is None else list(adapt_names)
    unknown = [n for n in names if n not in current]
    if unknown:
        raise KeyError(f"adapt_names {unknown} are not among the parameters {list(current)}")

    def inner_loss(adapted: Params, fixed: Params) -> torch.Tensor:
        return loss_fn(forward_with(model, {**fixed, **adapted}), batch)

    trajectory = [current]
    for j in range(steps):
        adapted = {n: current[n] for n in names}
        fixed = {n: v for n, v in current.items() if n not in adapted}
        grads = grad(inner_loss)(adapted, fixed)
        if first_order:
            # d theta'/d theta = I: the Hessian term of the meta-gradient is dropped.
            grads = {k: g.detach() for k, g in grads.items()}
        current = inner_step(current, grads, step_size_at(step_sizes, j))
        trajectory.append(current)
    return trajectory if return_all else current


def adapt_batch(
    model: Model,
    params: Mapping[str, torch.Tensor],
    loss_fn: LossFn,
    batch: Any,
    steps: int,
    step_sizes: StepSizeSpec,
    first_order: bool = False,
    *,
    adapt_names: Iterable[str] | None = None,
    return_all: bool = False,
    then: Callable[[Any, Any], Any] | None = None,
    chunk_size: int | None = None,
) -> Any:
    """:func:`adapt` for a meta-batch of tasks at once, vectorised with ``torch.func.vmap``.

    ``batch`` is a pytree of tensors with a leading task dimension; ``params`` and the step
    sizes are shared by all tasks. The result has the same leading task dimension on every
    tensor (``params[k]`` becomes ``[tasks, *params[k].shape]``) and is exactly what a loop
    of :func:`adapt` over the tasks would stack, with the same second-order graph. Use
    :func:`batched_forward` to run the model with the per-task parameters, or pass ``then``.

    Args:
        then: ``then(adapted, task_batch)``, run per task inside the same ``vmap`` on the
            adapted parameters (the list of them with ``return_all``) and that task's slice
            of ``batch``; its (tensor pytree) result is returned instead of the parameters.
            One ``vmap`` for adaptation and evaluation costs less than two.
        chunk_size: tasks vectorised together (``None``: all); smaller chunks save memory.
        Other arguments as in :func:`adapt`.
    """
    lrs: Any = step_sizes
    if isinstance(step_sizes, StepSizes):
        # One list of plain per-step dicts: the same code path as user-given step sizes.
        lrs = [step_sizes.at(j) for j in range(max(steps, 1))]

    def one(task_batch: Any) -> Any:
        adapted = adapt(model, params, loss_fn, task_batch, steps, lrs, first_order,
                        adapt_names=adapt_names, return_all=return_all)
        return adapted if then is None else then(adapted, task_batch)

    return vmap(one, chunk_size=chunk_size)(batch)


def batched_forward(model: Model, batched_params: Mapping[str, torch.Tensor], *inputs: Any) -> Any:
    """Run ``model`` once per task with per-task parameters (leading task dimension on both
    the parameters and ``inputs``), vectorised with ``vmap``."""

    def one(p: Params, *xs: Any) -> Any:
        return forward_with(model, p)(*xs)

    return vmap(one)(dict(batched_params), *inputs)


def adapt_step_batch(
    model: Model,
    params: Mapping[str, torch.Tensor],
    loss_fn: LossFn,
    batch: Any,
    step_size: StepSize,
    first_order: bool = False,
    *,
    per_task_params: bool = False,
) -> Params:
    """One inner step for every task of a meta-batch, vectorised with ``vmap``.

    Unlike :func:`adapt_batch`, the parameters may already differ per task
    (``per_task_params``: a leading task dimension, e.g. after an earlier step), which is
    what MAML policy gradient needs when every inner step samples fresh trajectories with
    the parameters adapted so far. ``step_size`` is shared by all tasks. The result carries
    the full second-order graph back to the shared parameters and step sizes.
    """

    def one(p: Params, task_batch: Any) -> Params:
        grads = grad(lambda q: loss_fn(forward_with(model, q), task_batch))(p)
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        return inner_step(p, grads, step_size)

    return vmap(one, in_dims=(0 if per_task_params else None, 0))(dict(params), batch)


TaskBatchedModel = Callable[..., Any]
"""``model(params, *inputs)`` where every parameter and input has a leading task dimension."""


def adapt_step_tasks(
    model: TaskBatchedModel,
    params: Mapping[str, torch.Tensor],
    loss_fn: Callable[[Forward, Any], torch.Tensor],
    batch: Any,
    step_size: StepSize,
    num_tasks: int,
    first_order: bool = False,
    *,
    per_task_params: bool = False,
) -> Params:
    """One inner step for every task by plain autograd on a task-batched model.

    The same update as :func:`adapt_step_batch`, for models that can run all tasks' own
    parameters in one call (batched matrix products): shared parameters are expanded to
    one copy per task, ``loss_fn(forward, batch)`` returns the ``[tasks]`` vector of
    per-task losses, and the gradient of their sum with respect to the copies is each
    task's own gradient. With ``create_graph=True`` (second order) the result carries the
    full meta-gradient graph; no ``vmap`` is involved, which on CPU saves its per-operator
    overhead. Also works where ``params`` need no gradient (sampling, evaluation).
    """
    outer_grad_mode = torch.is_grad_enabled()
    with torch.enable_grad():
        if per_task_params:
            copies = dict(params)
        else:
            copies = {k: v.expand(num_tasks, *v.shape) for k, v in params.items()}
        copies = {k: v if v.requires_grad else v.detach().clone().requires_grad_() for k, v in copies.items()}
        losses = loss_fn(lambda *inputs: model(copies, *inputs), batch)
        if losses.shape != (num_tasks,):
            raise ValueError(f"loss_fn must return one loss per task, shape ({num_tasks},), got {tuple(losses.shape)}")
        need_graph = not first_order and outer_grad_mode and any(p.requires_grad for p in params.values())
        grads = torch.autograd.grad(losses.sum(), list(copies.values()), create_graph=need_graph)
    if first_order or not need_graph:
        grads = tuple(g.detach() for g in grads)
    return inner_step(copies, dict(zip(copies, grads, strict=True)), step_size)
