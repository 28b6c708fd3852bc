"""Sequence cells: the transformer's KV-cache stepping equals its whole-sequence causal forward,
and no position reads a later one."""

import pytest
import torch

from metarl.rl.sequence_cells import CausalTransformer, make_cell, sinusoidal_positions


@pytest.fixture
def net():
    torch.manual_seed(0)
    return CausalTransformer(input_dim=6, dim=16, layers=2, heads=4, max_len=8)


def test_stepping_with_the_kv_cache_equals_the_full_causal_forward(net):
    x = torch.randn(21, 3, 6)  # longer than max_len: the cache grows while stepping
    with torch.no_grad():
        full, cache = net(x)
        state, steps = None, []
        for t in range(x.shape[0]):
            out, state = net(x[t : t + 1], state)
            steps.append(out)
        chunks, state2 = [], None
        for a, b in ((0, 5), (5, 6), (6, 14), (14, 21)):  # prefixes then blocks of several positions
            out, state2 = net(x[a:b], state2)
            chunks.append(out)
    torch.testing.assert_close(torch.cat(steps), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat(chunks), full, rtol=1e-5, atol=1e-5)
    assert state.length == state2.length == cache.length == 21
    for k_step, k_full in zip(state.keys, cache.keys, strict=True):
        torch.testing.assert_close(k_step[:, :, :21], k_full, rtol=1e-5, atol=1e-5)


def test_no_position_reads_a_later_one(net):
    x = torch.randn(12, 4, 6)
    later = x.clone()
    later[7:] += torch.randn(5, 4, 6) * 3
    with torch.no_grad():
        a, _ = net(x)
        b, _ = net(later)
    torch.testing.assert_close(a[:7], b[:7], rtol=0, atol=1e-6)
    assert (a[7:] - b[7:]).abs().amax(dim=(1, 2)).min() > 1e-3, "a changed input must change its own output"


def test_gradients_reach_every_earlier_position_and_not_later_ones(net):
    x = torch.randn(10, 2, 6, requires_grad=True)
    out, _ = net(x)
    (out[4] * torch.randn(16)).sum().backward()  # a plain sum of a layer norm's output is constant
    grad = x.grad.abs().sum(dim=(1, 2))
    assert (grad[:5] > 0).all() and (grad[5:] == 0).all()


def test_positions_and_cells():
    pe = sinusoidal_positions(3, 4, 8, torch.device("cpu"))
    torch.testing.assert_close(pe, sinusoidal_positions(0, 7, 8, torch.device("cpu"))[3:])
    torch.testing.assert_close(pe[:, 0], torch.sin(torch.arange(3.0, 7.0)))
    assert isinstance(make_cell("gru", 3, 4), torch.nn.GRU) and isinstance(make_cell("lstm", 3, 4), torch.nn.LSTM)
    with pytest.raises(ValueError, match="multiple of its heads"):
        CausalTransformer(3, 10, heads=4)
    with pytest.raises(ValueError, match="unknown sequence cell"):
        make_cell("rnn", 3, 4)  # type: ignore[arg-type]
