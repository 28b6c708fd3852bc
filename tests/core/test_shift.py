"""Shifts as data: parsing, determinism, JSON round trip, per-family effects and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metarl.core.registry import make_family
from metarl.core.seeding import task_rng
from metarl.core.shift import Shift, parse_shifts
from metarl.fewshot.image_shifts import apply_image_shifts

RL_SHIFTS = [
    ("metarl/Pendulum-v0", "mass:2"), ("metarl/Pendulum-v0", "length:1.5"), ("metarl/Pendulum-v0", "damping:0.3"),
    ("metarl/CartPole-v0", "length:1.5"), ("metarl/CartPole-v0", "cart-mass:2"), ("metarl/Nav2D-v0", "goal-radius:1.0"),
    ("metarl/Bandit-v0", "prior:0.5"), ("metarl/TabularMDP-v0", "sparsity:0.1"), ("metarl/Sinusoid-v0", "amplitude:5..10"),
]


@pytest.mark.parametrize("text, name, low, high", [
    ("rotate:45", "rotate", 45.0, 45.0), ("velocity:2..3", "velocity", 2.0, 3.0), ("invert", "invert", None, None),
    ("thickness:+1", "thickness", 1.0, 1.0), ("goal-radius:-0.5..0.5", "goal-radius", -0.5, 0.5),
])
def test_parse(text: str, name: str, low: float | None, high: float | None) -> None:
    spec = Shift.parse(text)
    assert (spec.name, spec.low, spec.high) == (name, low, high)
    assert Shift.parse(spec.text) == spec


@pytest.mark.parametrize("text", ["", "Rotate:1", "rotate:abc", "rotate:3..1", "rotate:nan", "mass:1..inf"])
def test_parse_refuses_malformed_shifts(text: str) -> None:
    with pytest.raises(ValueError, match="shift"):
        Shift.parse(text)


def test_parse_shifts_splits_commas() -> None:
    assert [s.name for s in parse_shifts(("rotate:1,noise:0.1", "invert"))] == ["rotate", "noise", "invert"]


@pytest.mark.parametrize("env_id, shift", RL_SHIFTS)
def test_shifted_tasks_are_deterministic_and_round_trip(env_id: str, shift: str) -> None:
    family = make_family(env_id)
    a = family.sample_tasks(20, "test", task_rng(3, "test"), shift=(shift,))
    b = family.sample_tasks(20, "test", task_rng(3, "test"), shift=(shift,))
    assert a == b
    assert all(t.shift and t.shift[0].startswith(shift.split(":")[0]) for t in a)
    assert [family.task_from_json(t.to_json()) for t in a] == a
    # The unshifted tasks of the same seed are the ones that were shifted.
    plain = family.sample_tasks(20, "test", task_rng(3, "test"))
    assert all(p.shift == () for p in plain) and all(x != p for x, p in zip(a, plain, strict=True))


def test_parameter_shifts_change_what_they_name() -> None:
    pendulum = make_family("metarl/Pendulum-v0")
    plain = pendulum.sample_tasks(10, "test", task_rng(0, "test"))
    heavy = pendulum.sample_tasks(10, "test", task_rng(0, "test"), shift=("mass:2",))
    assert all(h.mass == pytest.approx(2 * p.mass) and h.length == p.length for h, p in zip(heavy, plain, strict=True))
    nav = make_family("metarl/Nav2D-v0")
    far = nav.sample_tasks(50, "test", task_rng(0, "test"), shift=("goal-radius:0.9..1.0",))
    radii = np.array([math.hypot(*t.goal) for t in far])
    assert radii.min() >= 0.9 and radii.max() <= 1.0  # every training goal lies within 0.5 * sqrt(2) < 0.71
    sines = make_family("metarl/Sinusoid-v0").sample_tasks(100, "test", shift=("amplitude:5..10",))
    assert all(5 <= t.amplitude <= 10 for t in sines)


def test_a_batched_env_holds_tasks_of_several_shifts() -> None:
    family = make_family("metarl/Pendulum-v0")
    tasks = [*family.sample_tasks(2, "test", shift=("mass:2",)), *family.sample_tasks(2, "test", shift=("length:0.5",))]
    env = family.make_vec_env(4, tasks)
    obs, _ = env.reset(seed=0)
    assert obs.shape[0] == 4
    env.close()


def test_unsupported_shift_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"has no shift 'rotate'.*mass.*length.*gravity.*damping"):
        make_family("metarl/Pendulum-v0").sample_tasks(1, "test", shift=("rotate:45",))
    with pytest.raises(ValueError, match="has no shift 'mass'; its shifts: none"):
        make_family("metarl/HiddenGoalGrid-v0").sample_tasks(1, "test", shift=("mass:2",))
    with pytest.raises(ValueError, match="needs a value"):
        make_family("metarl/Pendulum-v0").sample_tasks(1, "test", shift=("mass",))


def test_a_task_with_a_foreign_shift_is_refused() -> None:
    family = make_family("metarl/Nav2D-v0")
    (task,) = family.sample_tasks(1, "test")
    with pytest.raises(ValueError, match="no shift 'rotate'"):
        family.validate_task(type(task)(task.goal, shift=("rotate:1.0",)))


def test_image_shifts() -> None:
    rng = np.random.default_rng(0)
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    assert torch.equal(apply_image_shifts(x, ("invert",), rng), 1 - x)
    thick = apply_image_shifts(x, ("thickness:1.0",), rng)
    assert thick.sum() == 9 and torch.equal(apply_image_shifts(thick, ("thickness:-1.0",), rng), x)
    blurred = apply_image_shifts(x, ("blur:1.0",), rng)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-4) and blurred.max() < 0.5
    bar = torch.zeros(1, 1, 9, 9)
    bar[0, 0, 1:8, 4] = 1.0  # a vertical bar turned by 90° is a horizontal bar
    turned = apply_image_shifts(bar, ("rotate:90.0",), rng)
    assert torch.allclose(turned, bar.transpose(-1, -2), atol=1e-5)
    noisy = apply_image_shifts(x, ("noise:0.3",), np.random.default_rng(1))
    assert torch.equal(noisy, apply_image_shifts(x, ("noise:0.3",), np.random.default_rng(1)))
    assert 0 <= noisy.min() and noisy.max() <= 1 and not torch.equal(noisy, x)


def test_every_family_names_its_ood_split_as_a_shift() -> None:
    from metarl.core.registry import family_specs

    for spec in family_specs():
        if spec.available:
            cls = spec.load()
            assert cls.ood_shift, f"{spec.id} does not say what its ood split is"
            assert set(cls.valueless_shifts) <= set(cls.shifts)
