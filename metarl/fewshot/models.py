"""Networks shared by the supervised agents.

Two Conv-4 variants (four blocks of 3x3 convolution, batch norm, ReLU; Vinyals et al. 2016):

- :class:`Conv4` for the metric learners and fine-tuning (ProtoNets, Siamese, ``finetune``):
  ordinary batch norm with running statistics and 2x2 max-pooling, flattened.
- :func:`maml_conv4` for the gradient-based and black-box meta-learners (MAML, the LSTM
  learner): batch norm over the current task's batch only (:class:`TaskBatchNorm2d`, written
  so that it differentiates correctly to second order under ``vmap``), max-pooled or strided
  as in the MAML paper's Omniglot net.

:func:`encoder` and :func:`predictor` pick Conv-4 for image families and an MLP otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from metarl.fewshot.family import SupervisedFamily


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution, batch norm, ReLU, 2×2 max-pool (Vinyals et al. 2016's block)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Sequential):
    """The Conv-4 embedding: four conv blocks, flattened. Inputs ``[M, C, H, W]`` with ``H, W >= 16``."""

    def __init__(self, in_channels: int = 1, channels: int = 64, blocks: int = 4):
        layers = [conv_block(in_channels if i == 0 else channels, channels) for i in range(blocks)]
        super().__init__(*layers, nn.Flatten())

    @staticmethod
    def check_input(shape: tuple[int, ...], blocks: int = 4) -> None:
        """Raise if images of ``shape`` would be pooled below 1×1."""
        if len(shape) != 3 or min(shape[1:]) < 2**blocks:
            raise ValueError(f"Conv-4 needs [channels, height, width] inputs of at least {2**blocks}×{2**blocks}, "
                             f"got {shape}")

    def out_features(self, shape: tuple[int, ...]) -> int:
        with torch.no_grad():
            return int(self.eval()(torch.zeros(1, *shape)).shape[-1])


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def fast_layout(net: ModuleT, device: torch.device) -> ModuleT:
    """Channels-last on CPU: ~1.4× faster convolutions at these sizes (measured on 2 cores)."""
    layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    return net.to(device=device, memory_format=layout)  # type: ignore[call-overload]  # missing from torch's stubs


def as_layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``, channels-last on CPU for 4-d image batches (see :func:`fast_layout`)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" and x.dim() == 4 else x


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
        # Two plain means, not torch.var_mean: on CPU its strided reduction over (N, H, W) took
        # 17 ms where these take 1 ms for a 32-task Conv-4 batch (a quarter of an ANIL meta-step).
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=(0, 2, 3), keepdim=True)
        scale = torch.rsqrt(var + self.eps) * self.weight[:, None, None]  # per channel: one product on x below
        return x * scale + (self.bias[:, None, None] - mean * scale)


class SpatialMean(nn.Module):
    """Average over the spatial dimensions: ``[N, C, H, W] -> [N, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def maml_conv4(input_shape: Sequence[int], filters: int = 64, strided: bool = False) -> tuple[nn.Sequential, int]:
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


def encoder(family: SupervisedFamily[Any], hidden: Sequence[int], filters: int, strided: bool = False) -> tuple[nn.Module, int]:
    """The family's input encoder: Conv-4 for images ``(C, H, W)``, else an MLP (with a
    ReLU on its output); returns it and its feature size."""
    if len(family.input_shape) == 3:
        return maml_conv4(family.input_shape, filters, strided)
    if not hidden:
        raise ValueError("the MLP encoder needs at least one hidden layer size")
    dims = [math.prod(family.input_shape), *hidden]
    return nn.Sequential(mlp(dims), nn.ReLU()), dims[-1]


def input_encoder(family: SupervisedFamily[Any], hidden: Sequence[int], filters: int) -> tuple[nn.Module, int]:
    """The black-box learners' encoder: :class:`Conv4` (ordinary batch norm, channels-last on
    CPU) for images ``(C, H, W)``, else an MLP with a ReLU on its output; returns it and its
    feature size.

    Unlike :func:`encoder` it needs no second derivatives, so it uses the fused batch norm:
    on 2 CPU cores that is several times faster than :class:`TaskBatchNorm2d` under ``vmap``.
    """
    if len(family.input_shape) == 3:
        Conv4.check_input(tuple(family.input_shape))
        body = Conv4(family.input_shape[0], filters)
        return nn.Sequential(ChannelsLast(), body), body.out_features(tuple(family.input_shape))
    return encoder(family, hidden, filters)


class ChannelsLast(nn.Module):
    """Puts 4-d image batches in the channels-last layout on CPU (see :func:`fast_layout`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_layout(x, x.device)


def predictor(family: SupervisedFamily[Any], hidden: Sequence[int], filters: int, strided: bool = False) -> nn.Module:
    """The family's prediction model: an MLP (``hidden`` units) for vector inputs, Conv-4
    and a linear head for images; ``num_outputs`` outputs."""
    if len(family.input_shape) == 3:
        body, size = maml_conv4(family.input_shape, filters, strided)
        return nn.Sequential(body, nn.Linear(size, family.num_outputs))
    return mlp([math.prod(family.input_shape), *hidden, family.num_outputs])
