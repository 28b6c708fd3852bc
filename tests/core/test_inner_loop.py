"""Oracle tests of the functional inner loop: hand-computed MAML steps, finite-difference
meta-gradients, the exact first-order/second-order difference, Meta-SGD step sizes and
vmap over tasks against a loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarl.core.inner_loop import (
    StepSizes,
    adapt,
    adapt_batch,
    adapt_step_batch,
    adapt_step_tasks,
    batched_forward,
    forward_with,
    params_of,
)


@pytest.fixture(autouse=True)
def _double():
    """Finite differences need double precision; the default is restored after each test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def quadratic(dim: int = 3, seed: int = 0):
    """Inner loss 0.5 theta'A theta - b'theta (gradient A theta - b, Hessian A) and outer
    loss 0.5 |theta - c|^2, on a 'model' that returns its own parameter."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    a = m @ m.T + torch.eye(dim, dtype=torch.float64)
    b, c = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    theta = torch.randn(dim, generator=g, dtype=torch.float64, requires_grad=True)

    def model(params, _=None):
        return params["theta"]

    def inner(forward, batch):
        t = forward()
        return 0.5 * t @ a @ t - b @ t

    def outer(t):
        return 0.5 * ((t - c) ** 2).sum()

    return model, {"theta": theta}, inner, outer, a, b, c


def test_one_step_on_a_quadratic_is_theta_minus_lr_grad():
    model, params, inner, _, a, b, _ = quadratic()
    theta = params["theta"]
    adapted = adapt(model, params, inner, None, steps=1, step_sizes=0.1)["theta"]
    torch.testing.assert_close(adapted, theta - 0.1 * (a @ theta - b))
    two = adapt(model, params, inner, None, steps=2, step_sizes=[0.1, 0.05])["theta"]
    t1 = theta - 0.1 * (a @ theta - b)
    torch.testing.assert_close(two, t1 - 0.05 * (a @ t1 - b))


def test_first_order_drops_exactly_the_hessian_term():
    model, params, inner, outer, a, b, c = quadratic()
    theta, lr = params["theta"], 0.07
    adapted = theta - lr * (a @ theta - b)
    second = torch.autograd.grad(outer(adapt(model, params, inner, None, 1, lr)["theta"]), theta)[0]
    first = torch.autograd.grad(outer(adapt(model, params, inner, None, 1, lr, first_order=True)["theta"]), theta)[0]
    d_outer = (adapted - c).detach()
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(second, (eye - lr * a).T @ d_outer)  # d theta'/d theta = I - lr * Hessian
    torch.testing.assert_close(first, d_outer)
    torch.testing.assert_close(second - first, -lr * a.T @ d_outer)  # the Hessian term, nothing else


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def mse(forward, batch):
    x, y = batch
    return ((forward(x) - y) ** 2).mean()


def test_second_order_meta_gradient_matches_finite_differences():
    net = tiny_mlp()
    g = torch.Generator().manual_seed(1)
    sx, qx = torch.randn(5, 1, generator=g), torch.randn(5, 1, generator=g)
    sy, qy = torch.sin(sx), torch.sin(qx)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).requires_grad_(True)

    def meta_loss(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i:i + s.numel()].reshape(s)
            i += s.numel()
        adapted = adapt(net, params, mse, (sx, sy), steps=2, step_sizes=0.3)
        return mse(forward_with(net, adapted), (qx, qy))

    assert torch.autograd.gradcheck(meta_loss, (flat0,), eps=1e-6, atol=1e-6)
    # ...and the first-order gradient is measurably different (the check above has teeth).
    analytic = torch.autograd.grad(meta_loss(flat0), flat0)[0]
    params = dict(net.named_parameters())
    fo = adapt(net, params, mse, (sx, sy), steps=2, step_sizes=0.3, first_order=True)
    fo_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(mse(forward_with(net, fo), (qx, qy)), list(params.values()))])
    assert (analytic - fo_grad).abs().max() > 1e-4


def test_meta_sgd_step_sizes_receive_their_gradient():
    model, params, inner, outer, a, b, c = quadratic()
    theta = params["theta"]
    for first_order in (False, True):
        lrs = StepSizes(params, init=0.05)
        adapted = adapt(model, params, inner, None, 1, lrs, first_order=first_order)["theta"]
        (g_alpha,) = torch.autograd.grad(outer(adapted), list(lrs.parameters()))
        expected = -(a @ theta - b) * (adapted - c)  # d outer / d alpha, elementwise (Li et al. 2017)
        torch.testing.assert_close(g_alpha, expected.detach())


def test_per_step_learned_step_sizes_each_get_a_gradient():
    net = tiny_mlp()
    params = params_of(net)
    lrs = StepSizes(params, init=0.1, steps=2, per_step=True)
    assert len(list(lrs.parameters())) == 2 * len(params)
    x = torch.linspace(-1, 1, 6).unsqueeze(1)
    adapted = adapt(net, params, mse, (x, x**2), 2, lrs)
    mse(forward_with(net, adapted), (x, x**3)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lrs.parameters())
    assert lrs.at(5) is not None and lrs.flat().numel() == 2 * sum(p.numel() for p in params.values())
    scalars = [torch.tensor(0.1, requires_grad=True), torch.tensor(0.05, requires_grad=True)]  # one learned lr per step
    adapted = adapt(net, params, mse, (x, x**2), 2, scalars)
    grads = torch.autograd.grad(mse(forward_with(net, adapted), (x, x**3)), scalars)
    assert all(g.abs() > 0 for g in grads)


def test_vmap_over_tasks_equals_a_loop_over_tasks():
    net = tiny_mlp(2)
    params = params_of(net)
    lrs = StepSizes(params, init=0.2, steps=2, per_step=True)
    g = torch.Generator().manual_seed(3)
    sx, qx = torch.randn(4, 6, 1, generator=g), torch.randn(4, 6, 1, generator=g)
    amp = torch.rand(4, 1, 1, generator=g) + 0.5
    sy, qy = amp * torch.sin(sx), amp * torch.sin(qx)

    batched = adapt_batch(net, params, mse, (sx, sy), 2, lrs)
    preds = batched_forward(net, batched, qx)
    loss_v = ((preds - qy) ** 2).mean(dim=(1, 2)).sum()
    grads_v = torch.autograd.grad(loss_v, [*params.values(), *lrs.parameters()])

    loss_l = 0.0
    for i in range(4):
        adapted = adapt(net, params, mse, (sx[i], sy[i]), 2, lrs)
        for k in params:
            torch.testing.assert_close(batched[k][i], adapted[k])
        loss_l = loss_l + mse(forward_with(net, adapted), (qx[i], qy[i]))
    grads_l = torch.autograd.grad(loss_l, [*params.values(), *lrs.parameters()])
    torch.testing.assert_close(loss_v, loss_l)
    for gv, gl in zip(grads_v, grads_l, strict=True):
        torch.testing.assert_close(gv, gl)


def test_return_all_partial_adaptation_and_errors():
    net = tiny_mlp()
    params = params_of(net)
    x = torch.linspace(-1, 1, 6).unsqueeze(1)
    traj = adapt(net, params, mse, (x, x), 3, 0.1, return_all=True)
    assert len(traj) == 4 and traj[0]["0.weight"] is params["0.weight"]
    head_only = adapt(net, params, mse, (x, x), 1, 0.1, adapt_names=["2.weight", "2.bias"])
    assert head_only["0.weight"] is params["0.weight"] and not torch.equal(head_only["2.bias"], params["2.bias"])
    assert adapt(net, params, mse, (x, x), 0, 0.1) == params
    with pytest.raises(ValueError, match="empty list"):
        adapt(net, params, mse, (x, x), 1, [])
    with pytest.raises(KeyError, match="no step size"):
        adapt(net, params, mse, (x, x), 1, {"0.weight": torch.ones(4, 1)})
    with pytest.raises(KeyError, match="adapt_names"):
        adapt(net, params, mse, (x, x), 1, 0.1, adapt_names=["nope"])


def test_task_batched_autograd_step_equals_the_vmap_step_with_its_second_order_graph():
    net = tiny_mlp(2)
    params = params_of(net)
    lrs = StepSizes(params, init=0.2, steps=1)
    g = torch.Generator().manual_seed(4)
    sx, qx = torch.randn(3, 5, 1, generator=g), torch.randn(3, 5, 1, generator=g)
    sy, qy = torch.sin(2 * sx), torch.cos(qx)

    def batched_model(p, x):  # the MLP with per-task weights, written with vmap for reference
        return batched_forward(net, p, x)

    def per_task_mse(forward, batch):
        x, y = batch
        return ((forward(x) - y) ** 2).mean(dim=(1, 2))

    for first_order in (False, True):
        fast = adapt_step_tasks(batched_model, params, per_task_mse, (sx, sy), lrs.at(0), 3, first_order)
        ref = adapt_step_batch(net, params, mse, (sx, sy), lrs.at(0), first_order)
        second = adapt_step_tasks(batched_model, fast, per_task_mse, (qx, qy), lrs.at(0), 3, first_order,
                                  per_task_params=True)
        ref2 = adapt_step_batch(net, ref, mse, (qx, qy), lrs.at(0), first_order, per_task_params=True)
        outer_f = sum(v.pow(2).sum() for v in second.values())
        outer_r = sum(v.pow(2).sum() for v in ref2.values())
        meta = [*params.values(), *lrs.parameters()]
        for a, b in zip(torch.autograd.grad(outer_f, meta), torch.autograd.grad(outer_r, meta), strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="one loss per task"):
        adapt_step_tasks(batched_model, params, lambda f, b: per_task_mse(f, b).sum(), (sx, sy), 0.1, 3)


def test_batched_inner_step_from_per_task_parameters_on_a_quadratic():
    # loss_i(w) = 0.5 * |w - c_i|^2, so one step gives w - lr * (w - c_i) for each task.
    c = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
    w = torch.tensor([[0.5, 0.5], [1.0, -1.0], [2.0, 2.0]])

    def model(params, x):
        return params["w"]

    out = adapt_step_batch(model, {"w": w}, lambda f, b: 0.5 * ((f(b) - b) ** 2).sum(), c, 0.3, per_task_params=True)
    torch.testing.assert_close(out["w"], w - 0.3 * (w - c))
    shared = adapt_step_batch(model, {"w": w[0]}, lambda f, b: 0.5 * ((f(b) - b) ** 2).sum(), c, 0.3)
    torch.testing.assert_close(shared["w"], w[0] - 0.3 * (w[0] - c))


