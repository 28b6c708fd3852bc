"""Seconds per MAML meta-iteration: the vmap'ed functional inner loop against a plain loop over tasks.

Both implementations take one second-order inner step per task (the loop with
``torch.autograd.grad(create_graph=True)``, as in the MAML reference code and
learn2learn; ours with ``torch.func.grad`` inside ``torch.func.vmap`` over the tasks,
:func:`metarl.core.inner_loop.adapt_batch`), average the query losses and take one Adam
step, on the same model and the same batch. The script checks that both give the
same meta-gradient before timing them.

Setups: the sinusoid MLP (40-40 ReLU, meta-batch 25, 10 support and 10 query points,
inner lr 0.01) and the Conv-4 (64 filters, batch norm, 28x28 inputs; strided as in the
MAML paper's Omniglot net, or with max-pooling) on random 5-way 1-shot episodes with 1
query per class (learn2learn's Omniglot example), meta-batch 32, inner lr 0.4.

    python experiments/maml_speed.py [--iterations 20] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from metarl.agents.maml import head_names
from metarl.core.inner_loop import adapt_batch, forward_with, params_of
from metarl.fewshot.models import maml_conv4, mlp


def sinusoid_setup(device: torch.device) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(25, 20, 1, generator=g) * 10 - 5
    amp, phase = torch.rand(25, 1, 1, generator=g) * 4.9 + 0.1, torch.rand(25, 1, 1, generator=g) * torch.pi
    y = amp * torch.sin(x - phase)
    return {"name": "sinusoid MLP 40-40, meta-batch 25, K=10", "model": mlp([1, 40, 40, 1]), "lr": 0.01,
            "batch": tuple(t.to(device) for t in (x[:, :10], y[:, :10], x[:, 10:], y[:, 10:])),
            "loss": lambda out, y: F.mse_loss(out, y)}


def conv_setup(device: torch.device, strided: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    body, size = maml_conv4((1, 28, 28), 64, strided)
    labels = torch.arange(5).repeat(32, 1)
    kind = "strided (MAML's Omniglot net)" if strided else "max-pool"
    return {"name": f"Conv-4 {kind}, 64 filters, 28x28 5-way 1-shot, 1 query/class, meta-batch 32",
            "model": nn.Sequential(body, nn.Linear(size, 5)), "lr": 0.4,
            "batch": tuple(t.to(device) for t in (torch.rand(32, 5, 1, 28, 28, generator=g), labels,
                                                  torch.rand(32, 5, 1, 28, 28, generator=g), labels)),
            "loss": lambda out, y: F.cross_entropy(out, y)}


def loop_meta_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], loss: Callable, lr: float) -> torch.Tensor:
    """The plain implementation: one task at a time, autograd.grad with create_graph=True."""
    params = params_of(model)
    sx, sy, qx, qy = batch
    total = torch.zeros(())
    for i in range(sx.shape[0]):
        inner = loss(forward_with(model, params)(sx[i]), sy[i])
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
        fast = {k: p - lr * g for (k, p), g in zip(params.items(), grads, strict=True)}
        total = total + loss(forward_with(model, fast)(qx[i]), qy[i])
    return total / sx.shape[0]


def vmap_meta_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], loss: Callable, lr: float,
                   first_order: bool = False, anil: bool = False) -> torch.Tensor:
    """Ours: every task at once with the shared functional inner loop (``--first-order`` and
    ``--anil`` as the MAML agent's flags: the head is the model's last linear layer)."""

    def support(forward: Any, b: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return loss(forward(b[0]), b[1])

    def query(adapted: dict[str, torch.Tensor], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return loss(forward_with(model, adapted)(b[2]), b[3])

    names = head_names(model) if anil else None
    return adapt_batch(model, params_of(model), support, batch, 1, lr, first_order, adapt_names=names, then=query).mean()


VARIANTS: dict[str, Callable[..., torch.Tensor]] = {
    "vmap, first order": lambda *a: vmap_meta_loss(*a, first_order=True),
    "vmap, ANIL (second order through the head)": lambda *a: vmap_meta_loss(*a, anil=True),
    "vmap, ANIL, first order": lambda *a: vmap_meta_loss(*a, first_order=True, anil=True),
}
"""The MAML agent's speed flags (``--first-order``, ``--anil``), timed beside the second-order rows."""


def channels_last_meta_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], loss: Callable, lr: float) -> torch.Tensor:
    """The vmap meta-loss with the Conv-4's weights in the channels-last layout (the model is
    converted once, on the first call; the per-task images are 4-D only inside vmap)."""
    if not getattr(model, "_channels_last", False):
        model.to(memory_format=torch.channels_last)
        model._channels_last = True  # type: ignore[assignment]
    return vmap_meta_loss(model, batch, loss, lr)


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_meta_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], loss: Callable, lr: float) -> torch.Tensor:
    """The vmap meta-loss through ``torch.compile`` (compiled on the first, warm-up, call)."""
    if "f" not in _COMPILED:
        _COMPILED["f"] = torch.compile(vmap_meta_loss)
    return _COMPILED["f"](model, batch, loss, lr)


COMPILE_VARIANTS: dict[str, Callable[..., torch.Tensor]] = {
    "vmap, channels-last weights": channels_last_meta_loss,
    "vmap, torch.compile (compile time not counted)": compiled_meta_loss,
}
"""``--compile-variants``: what the issue asked to try; run last, since they change the model."""


def time_it(meta_loss: Callable, setup: dict[str, Any], iterations: int) -> float:
    model = setup["model"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(iterations + 3):  # three warm-up iterations
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        meta_loss(model, setup["batch"], setup["loss"], setup["lr"]).backward()
        opt.step()
        if setup["batch"][0].is_cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_same_gradient(setup: dict[str, Any]) -> float:
    """Relative difference |g_vmap - g_loop| / |g_loop| of the whole meta-gradient vector."""
    model = setup["model"]
    grads = []
    for fn in (loop_meta_loss, vmap_meta_loss):
        g = torch.autograd.grad(fn(model, setup["batch"], setup["loss"], setup["lr"]), list(model.parameters()))
        grads.append(torch.cat([t.reshape(-1) for t in g]))
    return float((grads[0] - grads[1]).norm() / grads[0].norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20, help="timed meta-iterations per cell (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", action="store_true", help="also time first-order and ANIL on the Conv-4 setups")
    parser.add_argument("--compile-variants", action="store_true",
                        help="also time channels-last weights and torch.compile on the strided Conv-4 (compiling takes minutes)")
    parser.add_argument("--only", choices=["sinusoid", "conv", "conv-strided", "conv-maxpool"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load = os.getloadavg()
    rows = []
    variant_rows: list[tuple[str, str, float, float]] = []
    setups = {"sinusoid": sinusoid_setup, "conv-strided": lambda d: conv_setup(d, True),
              "conv-maxpool": lambda d: conv_setup(d, False)}
    for key, make in setups.items():
        if args.only and not key.startswith(args.only):
            continue
        torch.manual_seed(0)
        setup = make(device)
        setup["model"] = setup["model"].to(device)
        rel = check_same_gradient(setup)
        loop = time_it(loop_meta_loss, setup, args.iterations)
        vmapped = time_it(vmap_meta_loss, setup, args.iterations)
        tasks = setup["batch"][0].shape[0]
        rows.append((setup["name"], loop, vmapped, loop / vmapped, tasks / loop, tasks / vmapped, rel))
        if args.variants and key != "sinusoid":
            for name, fn in VARIANTS.items():
                variant_rows.append((setup["name"], name, tasks / time_it(fn, setup, args.iterations), tasks / loop))
        if args.compile_variants and key == "conv-strided":
            for name, fn in COMPILE_VARIANTS.items():
                variant_rows.append((setup["name"], name, tasks / time_it(fn, setup, args.iterations), tasks / loop))
    print(f"\nMAML meta-iteration (1 second-order inner step, Adam), device {device}, {args.threads} thread(s), "
          f"torch {torch.__version__}; load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"median of {args.iterations} iterations\n")
    print("| setup | loop s/iter | vmap s/iter | speed-up | loop tasks/s | vmap tasks/s | rel. meta-gradient diff |")
    print("|---|---|---|---|---|---|---|")
    for name, loop, vmapped, speedup, tl, tv, rel in rows:
        print(f"| {name} | {loop:.4f} | {vmapped:.4f} | {speedup:.2f}x | {tl:.0f} | {tv:.0f} | {rel:.1e} |")
    if variant_rows:
        print("\n| setup | variant | tasks/s | against the loop |")
        print("|---|---|---|---|")
        for name, variant, tv, tl in variant_rows:
            print(f"| {name} | {variant} | {tv:.0f} | {tv / tl:.2f}x |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
