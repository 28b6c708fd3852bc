"""The array backends of array families: NumPy arrays (the default) or torch tensors on any device.

A family writes its dynamics once against ``xp = namespace(array)``: NumPy itself for NumPy
arrays (no wrapper, so the NumPy path costs nothing extra) and the array-API namespace of
``array-api-compat`` for tensors (``xp.take``, ``xp.clip``, ``xp.bool``, ``device=`` keywords,
with the same names and semantics as NumPy 2). Methods both kinds of array have
(``x.reshape``) and :func:`astype` are cheaper than NumPy's function wrappers
(``np.reshape``, ``np.astype``: about 2 µs each), which count on small batches. What the array API does not standardise —
random draws — is here, dispatching on the generator: a ``numpy.random.Generator`` draws as
before (the same numbers as before this module existed), a ``torch.Generator`` draws on its
own device, so a device env never copies random numbers from the host.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as torch_xp
import numpy as np
import torch

from metarl.core.seeding import torch_generator

Array = Any
"""A NumPy array or a torch tensor."""
Generator = np.random.Generator | torch.Generator


# Every dispatch asks "NumPy?" first: ``isinstance(x, torch.Tensor)`` goes through torch's
# metaclass (0.3 µs), a cost the NumPy path would pay several times per step.


def namespace(x: Array) -> Any:
    """The array namespace of ``x``: ``numpy`` for NumPy arrays, array-api-compat's ``torch`` for tensors."""
    return np if isinstance(x, np.ndarray) or not isinstance(x, torch.Tensor) else torch_xp


def astype(x: Array, dtype: Any) -> Array:
    """``x`` as ``dtype`` (``xp.float32``, ...): the array's own method, as ``np.astype`` costs a
    NumPy step about 2 µs more (several per step count on small batches)."""
    return x.astype(dtype) if isinstance(x, np.ndarray) else x.to(dtype)


def device_of(x: Array) -> Any:
    """The device of ``x`` (``"cpu"`` for NumPy arrays), for the ``device=`` keyword of ``xp``."""
    return "cpu" if isinstance(x, np.ndarray) or not isinstance(x, torch.Tensor) else x.device


def to_numpy(x: Array) -> np.ndarray:
    """``x`` as a NumPy array (a copy from the device for a tensor)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_device(x: np.ndarray | float | int, device: torch.device) -> torch.Tensor:
    """A NumPy array (or number) as a tensor on ``device``, keeping its dtype."""
    return torch.as_tensor(np.asarray(x), device=device)


_CONSTANTS: dict[tuple[int, str], tuple[np.ndarray, torch.Tensor]] = {}


def constant(value: np.ndarray, like: Array) -> Array:
    """A module-level NumPy table (e.g. the moves of a grid) in ``like``'s backend and device.

    NumPy gets ``value`` itself. A tensor gets a copy on its device made once and cached, so
    a device step does not copy the table from the host every time. The cache holds
    ``value`` alive, so pass only tables that live as long as the program.
    """
    if isinstance(like, np.ndarray) or not isinstance(like, torch.Tensor):
        return value
    key = (id(value), str(like.device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = (value, to_device(value, like.device))
    return _CONSTANTS[key][1]


def random(rng: Generator, n: int) -> Array:
    """``n`` float64 draws uniform in ``[0, 1)``."""
    if isinstance(rng, np.random.Generator):
        return rng.random(n)
    return torch.rand(n, generator=rng, device=rng.device, dtype=torch.float64)


def normal(rng: Generator, n: int) -> Array:
    """``n`` float64 standard normal draws."""
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(n)
    return torch.randn(n, generator=rng, device=rng.device, dtype=torch.float64)


def uniform(rng: Generator, low: Array, high: Array, size: tuple[int, ...] | None = None) -> Array:
    """Draws uniform in ``[low, high)``, of ``size`` or of the broadcast shape of the bounds.

    NumPy calls ``rng.uniform(low, high, size)`` (the numbers Gymnasium's own envs draw);
    torch computes NumPy's formula ``low + (high - low) * U[0, 1)`` on the generator's device.
    """
    if isinstance(rng, np.random.Generator):
        return rng.uniform(low, high, size)
    shape = size if size is not None else torch.broadcast_shapes(low.shape, high.shape)
    u = torch.rand(shape, generator=rng, device=rng.device, dtype=torch.float64)
    return low + (high - low) * u


def generator(device: torch.device, seed: int | None) -> torch.Generator:
    """A ``torch.Generator`` on ``device``: seeded with ``seed``, or from fresh entropy for ``None``."""
    if seed is not None:
        return torch_generator(seed, device)
    g = torch.Generator(device=device)
    g.seed()
    return g
