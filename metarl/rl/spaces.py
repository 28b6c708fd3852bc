"""Network inputs from Gymnasium observations, env actions from network outputs, the check
every env makes of the actions it is given, and uniformly random actions of a space.

Policies see Discrete observations one-hot and Box ones flattened. Gaussian policies act
in ``[-1, 1]`` units: the env receives ``center + scale * u`` for a Box with finite
bounds (the env clips), so one initial spread suits a torque of ±2 and a step of ±0.1
alike.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import nn


def space_dim(space: gym.Space) -> int:
    """Width of a space's network encoding: ``n`` for Discrete, the element count for Box."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise TypeError(f"metarl policies support Box and Discrete spaces, got {space}")


class SpaceCodec:
    """Encodes batched observations and actions of one env's spaces for a network."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, device: torch.device | str = "cpu"):
        self.obs_space, self.act_space = obs_space, act_space
        self.device = torch.device(device)
        self.obs_dim, self.act_dim = space_dim(obs_space), space_dim(act_space)
        self.discrete_obs = isinstance(obs_space, gym.spaces.Discrete)
        self.discrete_actions = isinstance(act_space, gym.spaces.Discrete)
        if isinstance(act_space, gym.spaces.Box):
            low, high = act_space.low.ravel(), act_space.high.ravel()
            finite = np.isfinite(low) & np.isfinite(high)
            self.center = torch.as_tensor(np.where(finite, (high + low) / 2, 0.0), dtype=torch.float32, device=self.device)
            self.scale = torch.as_tensor(np.where(finite, (high - low) / 2, 1.0), dtype=torch.float32, device=self.device)

    def encode_obs(self, obs: np.ndarray) -> torch.Tensor:
        """``[N, obs_dim]`` float tensor: one-hot for Discrete, flattened for Box."""
        o = torch.as_tensor(obs, device=self.device)
        if self.discrete_obs:
            return nn.functional.one_hot(o.long(), self.obs_dim).float()
        return o.reshape(len(o), -1).float()

    def to_env(self, action: torch.Tensor, tensor: bool = False) -> Any:
        """The env action for a network action (integers, or ``center + scale * u``): a NumPy
        array, or with ``tensor`` (for a device env) a tensor left on the network's device."""
        if not self.discrete_actions:
            action = (self.center + self.scale * action).reshape(len(action), *(self.act_space.shape or ()))
        return action if tensor else action.cpu().numpy()

    def encode_action(self, actions: np.ndarray) -> torch.Tensor:
        """``[N, act_dim]``: one-hot, or the action as the env applied it in ``[-1, 1]`` units."""
        a = torch.as_tensor(actions, device=self.device)
        if self.discrete_actions:
            return nn.functional.one_hot(a.long(), self.act_dim).float()
        return ((a.float().reshape(len(a), -1) - self.center) / self.scale).clamp(-1.0, 1.0)


class _ActionRule:
    """What an action of ``space`` must be: the shape of one (``num_envs`` None) or of a batch,
    and for Discrete spaces the range ``[low, low + n)``."""

    def __init__(self, space: gym.Space, num_envs: int | None = None):
        self.space = space
        shape = tuple(space.shape or ())
        self.expected = shape if num_envs is None else (num_envs, *shape)
        self.what = "an action" if num_envs is None else f"{num_envs} actions"
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.box = isinstance(space, gym.spaces.Box)
        self.low = int(space.start) if isinstance(space, gym.spaces.Discrete) else 0
        self.n = int(space.n) if isinstance(space, gym.spaces.Discrete) else 0

    def _out_of_range(self, a: np.ndarray) -> None:
        high = self.low + self.n
        bad = a[(a < self.low) | (a >= high)].ravel()[0]
        raise ValueError(f"action {bad} is outside {self.space}: actions must lie in [{self.low}, {high - 1}]")


class ActionCheck(_ActionRule):
    """Checks actions against a space: ``check(actions)`` returns them as an array if they
    belong to ``space``, else raises ``ValueError`` saying why.

    One action (``num_envs`` None) or a batch of ``num_envs``, with the space's shape. Discrete
    actions must be integers in ``[start, start + n)`` (a float or an out-of-range index would
    silently pick another action); Box actions must be finite (a NaN would poison the state for
    the rest of the episode); values outside a Box's bounds are the env's to clip. Built once
    per env, so a step pays for one reduction over the batch (about 2 µs for 4,096 sub-envs).
    """

    def __call__(self, actions: Any) -> np.ndarray:
        if self.discrete and isinstance(actions, (int, np.integer)) and not isinstance(actions, bool) \
                and self.expected == ():  # one plain integer: no array work
            if not 0 <= actions - self.low < self.n:
                self._out_of_range(np.asarray(actions))
            return np.asarray(actions)
        try:
            a = np.asarray(actions)
        except ValueError as exc:  # a ragged list: its actions have different shapes
            raise ValueError(f"expected {self.what} of shape {self.expected} for {self.space}; these do not form an "
                             f"array ({exc})") from exc
        if a.shape != self.expected:
            raise ValueError(f"expected {self.what} of shape {self.expected} for {self.space}, got shape {a.shape}")
        kind = a.dtype.kind
        if self.discrete:
            if kind not in "iu":
                raise ValueError(f"{self.space} takes integer actions, got {a.dtype} ({a.ravel()[:4].tolist()}...)")
            # One reduction: below ``low``, ``a - low`` wraps to a huge unsigned number.
            shifted = a.astype(np.int64, copy=False) - self.low if self.low else a.astype(np.int64, copy=False)
            if a.size and int(shifted.view(np.uint64).max()) >= self.n:
                self._out_of_range(a)
        elif self.box:
            if kind not in "fiu":
                raise ValueError(f"{self.space} takes numeric actions, got {a.dtype}")
            if kind == "f" and not np.isfinite(a).all():
                raise ValueError(f"actions must be finite for {self.space}, got NaN or infinity")
        return a

class TensorActionCheck(_ActionRule):
    """:class:`ActionCheck` for a device env: returns the actions as a tensor on ``device``.

    Shapes and dtypes are checked on the host (they are metadata); the values with one
    reduction on the device. On the CPU that reduction is read at once and a bad action raises
    ``ValueError`` in ``step``. On an accelerator reading it would make every step wait for the
    device, so the check is deferred (``defer``, default: any device but the CPU): Discrete
    actions are clamped into range (an out-of-range index would otherwise crash the device
    kernel that gathers with it), the finding is accumulated on the device, and
    :meth:`raise_pending` — called by the env's ``reset`` — raises the ``ValueError`` then.
    """

    def __init__(self, space: gym.Space, num_envs: int, device: torch.device, defer: bool | None = None):
        super().__init__(space, num_envs)
        self.device = device
        self.defer = device.type != "cpu" if defer is None else defer
        self._invalid: torch.Tensor | None = None

    def __call__(self, actions: Any) -> torch.Tensor:
        try:
            a = torch.as_tensor(actions, device=self.device)
        except (ValueError, TypeError) as exc:  # a ragged list
            raise ValueError(f"expected {self.what} of shape {self.expected} for {self.space}; these do not form an "
                             f"array ({exc})") from exc
        if tuple(a.shape) != self.expected:
            raise ValueError(f"expected {self.what} of shape {self.expected} for {self.space}, got shape {tuple(a.shape)}")
        integer = not (a.is_floating_point() or a.is_complex() or a.dtype == torch.bool)
        bad: torch.Tensor | None = None  # other spaces: the env's own code decides
        if self.discrete:
            if not integer:
                raise ValueError(f"{self.space} takes integer actions, got {a.dtype} ({a.ravel()[:4].tolist()}...)")
            bad = ((a < self.low) | (a >= self.low + self.n)).any()
        elif self.box:
            if not (integer or a.is_floating_point()):
                raise ValueError(f"{self.space} takes numeric actions, got {a.dtype}")
            bad = ~torch.isfinite(a).all() if a.is_floating_point() else None
        if bad is None:
            return a
        if not self.defer:
            if bool(bad):
                self._raise(a)
            return a
        self._invalid = bad if self._invalid is None else torch.logical_or(self._invalid, bad)
        return a.clamp(self.low, self.low + self.n - 1) if self.discrete else a

    def _raise(self, a: torch.Tensor) -> None:
        if self.discrete:
            self._out_of_range(a.cpu().numpy())
        raise ValueError(f"actions must be finite for {self.space}, got NaN or infinity")

    def raise_pending(self) -> None:
        """Raise ``ValueError`` if an action checked since the last call was invalid (deferred
        checks; reads the device once)."""
        invalid, self._invalid = self._invalid, None
        if invalid is not None and bool(invalid):
            what = "outside the space (clamped into it)" if self.discrete else "NaN or infinite"
            raise ValueError(f"an action since the last reset was {what} for {self.space}")


def sample_actions(space: gym.Space, num_envs: int, rng: np.random.Generator) -> Any:
    """``num_envs`` independent uniform samples of ``space``, stacked along a first axis.

    Discrete, bounded float Box, MultiDiscrete and MultiBinary spaces are sampled with one
    array call on ``rng``. Any other space (e.g. an unbounded Box, where "uniform" has no
    meaning) falls back on Gymnasium's own sampler of the batched space, seeded from ``rng``.
    """
    if isinstance(space, spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=num_envs).astype(space.dtype)
    if isinstance(space, spaces.Box) and space.is_bounded("both") and np.issubdtype(space.dtype, np.floating):
        return rng.uniform(space.low, space.high, size=(num_envs, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiDiscrete):
        low = space.start
        return rng.integers(low, low + space.nvec, size=(num_envs, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.MultiBinary):
        return rng.integers(0, 2, size=(num_envs, *np.atleast_1d(space.n))).astype(space.dtype)
    batched = batch_space(space, num_envs)
    batched.seed(int(rng.integers(2**63)))
    return batched.sample()
