"""Distribution shifts as data: ``rotate:45``, ``mass:2``, ``velocity:2..3``, ``invert``.

A shift is written ``name``, ``name:value`` or ``name:low..high`` (a range draws the value
uniformly per task, from the task stream, so a shifted task set is reproducible from its
seed). A family lists the shifts it supports in ``TaskFamily.shifts`` and applies them in
``TaskFamily.shift_tasks``: a shift of a task's parameters (a mass, a goal) changes the task's
values; a shift of its observations (an image rotation, noise) is applied where the data are
drawn. Either way the shift's text is recorded in the task's ``shift`` field, so shifted tasks
round-trip through JSON, compare unequal to the unshifted ones, and tasks of several shifts can
share one batched env.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T", bound=Any)

_SPEC = re.compile(r"^([a-z][a-z0-9-]*)(?::(.+))?$")


@dataclasses.dataclass(frozen=True)
class Shift:
    """One parsed shift: its name and value (``low == high``), range, or no value (``None``)."""

    name: str
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> Shift:
        """Read ``name``, ``name:value`` or ``name:low..high``; a ``ValueError`` says what is wrong."""
        match = _SPEC.match(text.strip())
        if not match:
            raise ValueError(f"shift {text!r}: expected name, name:value or name:low..high (e.g. rotate:45, "
                             "velocity:2..3, invert)")
        name, value = match.groups()
        if value is None:
            return cls(name)
        low_text, sep, high_text = value.partition("..")
        try:
            low = float(low_text)
            high = float(high_text) if sep else low
        except ValueError:
            raise ValueError(f"shift {text!r}: {value!r} is not a number or a range low..high") from None
        if not (math.isfinite(low) and math.isfinite(high)) or high < low:
            raise ValueError(f"shift {text!r}: the value must be finite and a range must have low <= high")
        return cls(name, low, high)

    @property
    def text(self) -> str:
        """The canonical spelling (what tasks record)."""
        if self.low is None or self.high is None:
            return self.name
        value = f"{self.low:g}" if self.low == self.high else f"{self.low:g}..{self.high:g}"
        return f"{self.name}:{value}"

    def value(self, rng: np.random.Generator) -> float:
        """The value for one task: the fixed value, or a uniform draw from the range."""
        if self.low is None or self.high is None:
            raise ValueError(f"shift {self.name!r} needs a value, e.g. {self.name}:1.5")
        return self.low if self.low == self.high else float(rng.uniform(self.low, self.high))

    def values(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Values for ``n`` tasks (one draw each for a range)."""
        if self.low is None or self.high is None:
            raise ValueError(f"shift {self.name!r} needs a value, e.g. {self.name}:1.5")
        return np.full(n, self.low) if self.low == self.high else rng.uniform(self.low, self.high, n)


def parse_shifts(texts: str | tuple[str, ...] | list[str]) -> tuple[Shift, ...]:
    """Parse one or more shifts (a tuple of texts, or one comma-separated text)."""
    items = texts.split(",") if isinstance(texts, str) else [p for t in texts for p in t.split(",")]
    return tuple(Shift.parse(t) for t in items if t.strip())


def scaled(task: T, factor: float, *names: str) -> T:
    """``task`` with each field of ``names`` (a number or a tuple of numbers) multiplied by ``factor``."""
    def times(v: float | tuple[float, ...]) -> float | tuple[float, ...]:
        return tuple(x * factor for x in v) if isinstance(v, tuple) else v * factor

    return dataclasses.replace(task, **{name: times(getattr(task, name)) for name in names})  # type: ignore[type-var]
