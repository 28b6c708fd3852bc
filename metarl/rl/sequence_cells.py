"""Sequence cells of memory-based policies: GRU, LSTM and a causal transformer.

Every cell maps a time-major input ``[T, N, input]`` and a state (``None`` at a trial's start)
to features ``[T, N, hidden]`` and the state after the sequence, as ``torch.nn.GRU`` does, so
a policy can run a whole trial in one call (training) or one step at a time (acting) with the
same module. The transformer's state is a :class:`KVCache`: the keys and values of every
position seen so far, so a step attends to the cached prefix at O(t) cost instead of running
it again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

CellKind = Literal["gru", "lstm", "transformer"]


@dataclasses.dataclass
class KVCache:
    """The keys and values of a causal transformer's first ``length`` positions.

    ``keys[i]`` and ``values[i]`` (layer ``i``) are ``[N, heads, capacity, head_dim]``; the
    positions past ``length`` are free space, so a step writes its row without copying the prefix.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int


def _extend(cache: torch.Tensor | None, new: torch.Tensor, start: int, capacity: int) -> torch.Tensor:
    """``cache[:, :, :start]`` followed by ``new`` along positions, in a buffer of at least
    ``capacity`` positions; written in place where no gradient flows through the cache."""
    end = start + new.shape[2]
    if torch.is_grad_enabled() and (new.requires_grad or (cache is not None and cache.requires_grad)):
        # In-place writes would invalidate what autograd saved for earlier positions.
        return new if cache is None else torch.cat([cache[:, :, :start], new], 2)
    if cache is None or cache.shape[2] < end:
        size = max(capacity, end) if cache is None else max(2 * cache.shape[2], end)
        grown = new.new_zeros(*new.shape[:2], size, new.shape[3])
        if cache is not None:
            grown[:, :, :start] = cache[:, :, :start]
        cache = grown
    cache[:, :, start:end] = new
    return cache


def sinusoidal_positions(start: int, count: int, dim: int, device: torch.device) -> torch.Tensor:
    """Vaswani et al.'s position encodings of positions ``start .. start + count - 1``: ``[count, dim]``."""
    pos = torch.arange(start, start + count, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(count, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)
    return out


class CausalBlock(nn.Module):
    """A pre-norm transformer layer: causal multi-head self-attention, then a GELU MLP."""

    def __init__(self, dim: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))

    def forward(self, h: torch.Tensor, keys: torch.Tensor | None, values: torch.Tensor | None, past: int,
                capacity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``h`` is ``[N, T, dim]`` at positions ``past .. past + T - 1``; returns the layer's output
        and the caches extended by these positions."""
        n, t, dim = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(n, t, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        keys, values = _extend(keys, k, past, capacity), _extend(values, v, past, capacity)
        k_all, v_all = keys[:, :, : past + t], values[:, :, : past + t]
        if past == 0:
            read = F.scaled_dot_product_attention(q, k_all, v_all, is_causal=t > 1)
        elif t == 1:
            read = F.scaled_dot_product_attention(q, k_all, v_all)  # the newest position sees every cached one
        else:
            query_pos = torch.arange(past, past + t, device=h.device)[:, None]
            allowed = torch.arange(past + t, device=h.device)[None, :] <= query_pos
            read = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=allowed)
        h = h + self.out(read.transpose(1, 2).reshape(n, t, dim))
        return h + self.ff(self.norm2(h)), keys, values


class CausalTransformer(nn.Module):
    """A small decoder-only transformer over a trial, with the interface of ``nn.GRU``.

    The input is projected to ``dim`` and given sinusoidal position encodings (no length limit,
    so a checkpoint does not depend on the trial length); ``layers`` pre-norm blocks of causal
    attention with ``heads`` heads follow, and a final layer norm. ``max_len`` only sizes the
    first allocation of the cache when stepping.
    """

    def __init__(self, input_dim: int, dim: int, layers: int = 2, heads: int = 4, ff_mult: int = 2,
                 max_len: int = 128):
        super().__init__()
        if dim % heads or dim % 2:
            raise ValueError(f"the transformer's width ({dim}) must be even and a multiple of its heads ({heads})")
        self.dim, self.max_len = dim, max_len
        self.embed = nn.Linear(input_dim, dim)
        self.blocks = nn.ModuleList(CausalBlock(dim, heads, ff_mult) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, state: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Features ``[T, N, dim]`` of ``x`` (``[T, N, input]``) following the cached positions of
        ``state`` (none: the sequence starts here), and the cache including ``x``'s positions."""
        t = x.shape[0]
        past = 0 if state is None else state.length
        h = (self.embed(x) + sinusoidal_positions(past, t, self.dim, x.device)[:, None]).transpose(0, 1)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            h, k, v = block(h, None if state is None else state.keys[i], None if state is None else state.values[i],
                            past, self.max_len)
            keys.append(k)
            values.append(v)
        return self.norm(h).transpose(0, 1), KVCache(keys, values, past + t)


def make_cell(kind: CellKind, input_dim: int, hidden: int, max_len: int = 128, layers: int = 2,
              heads: int = 4) -> nn.Module:
    """The sequence cell ``kind`` from ``input_dim`` to ``hidden`` features (``layers``, ``heads``
    and ``max_len``, the expected sequence length, apply to the transformer only)."""
    if kind == "gru":
        return nn.GRU(input_dim, hidden)
    if kind == "lstm":
        return nn.LSTM(input_dim, hidden)
    if kind == "transformer":
        return CausalTransformer(input_dim, hidden, layers, heads, max_len=max_len)
    raise ValueError(f"unknown sequence cell {kind!r}; choose gru, lstm or transformer")


def cell_state_bytes(kind: CellKind, batch: int, hidden: int, length: int, layers: int = 2) -> float:
    """Bytes of float32 state a cell keeps while stepping ``batch`` sequences of ``length`` steps."""
    if kind == "transformer":
        return 4.0 * 2 * layers * batch * length * hidden  # keys and values of every position and layer
    return 4.0 * 2 * batch * hidden

