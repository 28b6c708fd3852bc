"""Checks of values at the boundary: config fields and family arguments against their declared
types and ranges, and sizes against the memory they would take.

Every message names the flag or key, the value, and what is allowed. Configs and families are
frozen dataclasses; :func:`check_field_types` reads their type hints (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` and fixed-length tuples),
so a value read from a JSON file is held to the same rules as a flag.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin


def flag(name: str) -> str:
    """The command-line spelling of a field: ``num_trials`` → ``--num-trials``."""
    return "--" + name.replace("_", "-")


def check_positive(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is not > 0."""
    for name in names:
        if getattr(config, name) <= 0:
            raise ValueError(f"{flag(name)} must be > 0, got {getattr(config, name)}")


def check_non_negative(config: Any, names: Sequence[str]) -> None:
    """Raise a flag-named error for any of ``names`` that is < 0."""
    for name in names:
        if getattr(config, name) < 0:
            raise ValueError(f"{flag(name)} must be >= 0, got {getattr(config, name)}")


def _describe(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(annotation))
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}s"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string",
            type(None): "null"}.get(annotation, str(annotation))


def _fits(value: Any, annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(annotation))
    if origin is tuple:
        args = get_args(annotation)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    return True  # a type this checker does not know (none of metarl's fields): left to the class


def check_value(name: str, value: Any, annotation: Any, where: str = "") -> None:
    """Raise ``ValueError`` if ``value`` does not fit ``annotation``, naming ``name``."""
    if not _fits(value, annotation):
        place = f" in {where}" if where else ""
        raise ValueError(f"{name}{place} must be {_describe(annotation)}, got {value!r}")


def check_field_types(instance: Any, where: str = "", flags: bool = True) -> None:
    """Check every init field of a dataclass instance against its type hint (floats finite).

    ``flags``: name fields as flags (``--num-trials``) rather than keys (``num_trials``).
    """
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        if f.init and f.name in hints:
            check_value(flag(f.name) if flags else f.name, getattr(instance, f.name), hints[f.name], where)


def physical_memory() -> int:
    """Bytes of physical memory on this machine (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 0


def check_memory(num_bytes: float, what: str, fraction: float = 0.5) -> None:
    """Refuse a size that would take more than ``fraction`` of the machine's memory, with an
    estimate of what it would take (``what`` says which setting asks for it)."""
    total = physical_memory()
    if total and num_bytes > fraction * total:
        raise ValueError(f"{what} would hold about {num_bytes / 2**30:,.1f} GiB, more than {fraction:.0%} of "
                         f"this machine's {total / 2**30:,.1f} GiB: make it smaller")


def nonfinite_entries(state: Any, prefix: str = "") -> list[str]:
    """Paths of the tensors in a (nested) state dict that hold NaN or infinity."""
    import torch

    if isinstance(state, torch.Tensor):
        return [prefix or "tensor"] if state.is_floating_point() and not bool(torch.isfinite(state).all()) else []
    if isinstance(state, dict):
        return [p for k, v in state.items() for p in nonfinite_entries(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(state, (list, tuple)):
        return [p for i, v in enumerate(state) for p in nonfinite_entries(v, f"{prefix}[{i}]")]
    return []
