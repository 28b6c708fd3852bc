"""Shifts of images, applied to an episode's inputs when it is drawn.

Image families (Omniglot, digits) list :data:`IMAGE_SHIFTS` as their shifts. A task records
its shifts as texts (``rotate:30.0``, ``invert``; :mod:`metarl.core.shift`) and
:meth:`~metarl.fewshot.family.SupervisedFamily.sample_episodes` transforms the support and
query images of that task with :func:`apply_image_shifts`, in the order the shifts were
given. Images are ``[..., channels, height, width]`` floats in ``[0, 1]`` with the strokes
bright on a dark background, so padding with zeros adds background.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from metarl.core.shift import Shift

IMAGE_SHIFTS: dict[str, str] = {
    "rotate": "rotate by v degrees counter-clockwise",
    "scale": "zoom by v about the centre (0.7: smaller drawings)",
    "noise": "add Gaussian pixel noise of standard deviation v, clipped to [0, 1]",
    "blur": "Gaussian blur of standard deviation v pixels",
    "invert": "swap strokes and background (1 - x)",
    "thickness": "thicken strokes by v pixels (negative: thin them)",
}
"""Name → what the value does, for every image shift."""


def _affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` ``[N, C, H, W]`` through the 2x3 ``matrix`` (output → input coordinates)."""
    theta = matrix.to(x.dtype).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    rows = kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    cols = kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), rows, groups=c)
    return F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), cols, groups=c)


def _thickness(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grey-scale dilation (``pixels > 0``) or erosion (``< 0``) by a square of side ``2|pixels|+1``."""
    k = abs(pixels)
    if k == 0:
        return x
    if pixels > 0:
        return F.max_pool2d(x, 2 * k + 1, stride=1, padding=k)
    return -F.max_pool2d(-x, 2 * k + 1, stride=1, padding=k)


def check_image_shift(spec: Shift) -> None:
    """Refuse values an image shift cannot take (a non-positive zoom, a negative blur)."""
    value = spec.low
    if spec.name == "scale" and value is not None and not value > 0:
        raise ValueError(f"shift {spec.text!r}: a zoom must be > 0")
    if spec.name in ("noise", "blur") and value is not None and value < 0:
        raise ValueError(f"shift {spec.text!r}: {spec.name} must be >= 0")


def apply_image_shift(x: torch.Tensor, spec: Shift, rng: np.random.Generator) -> torch.Tensor:
    """``x`` ``[..., C, H, W]`` under one shift with a fixed value (as tasks record them);
    ``rng`` draws the noise of ``noise``."""
    check_image_shift(spec)
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:]).float()
    value = spec.low
    if spec.name == "invert":
        out = 1.0 - flat
    elif value is None:
        raise ValueError(f"shift {spec.name!r} needs a value, e.g. {spec.name}:1")
    elif spec.name == "rotate":
        a = math.radians(value)
        # affine_grid maps output to input coordinates with y pointing down, so a
        # counter-clockwise turn of the picture is this matrix.
        out = _affine(flat, torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]]))
    elif spec.name == "scale":
        out = _affine(flat, torch.tensor([[1.0 / value, 0.0, 0.0], [0.0, 1.0 / value, 0.0]]))
    elif spec.name == "noise":
        noise = torch.from_numpy(rng.standard_normal(flat.shape).astype(np.float32))
        out = (flat + value * noise).clamp(0.0, 1.0)
    elif spec.name == "blur":
        out = _blur(flat, value) if value > 0 else flat
    elif spec.name == "thickness":
        out = _thickness(flat, int(round(value)))
    else:
        raise ValueError(f"unknown image shift {spec.name!r}; known: {', '.join(IMAGE_SHIFTS)}")
    return out.reshape(shape).to(x.dtype)


def apply_image_shifts(x: torch.Tensor, texts: tuple[str, ...], rng: np.random.Generator) -> torch.Tensor:
    """``x`` under each recorded shift of ``texts`` in turn."""
    for text in texts:
        x = apply_image_shift(x, Shift.parse(text), rng)
    return x
