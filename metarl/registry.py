"""The registries of task families and algorithms.

Families are registered under versioned ids (``metarl/Bandit-v0``). RL families are
registered with Gymnasium under the same id too, with both an ``entry_point`` (a single
env) and a ``vector_entry_point`` (the family's native batched env).

A user plugs in a family by calling :func:`register` in a module they import, by
passing ``their_module:TheirFamily-v0`` (the module is imported first), or by publishing
an entry point in the group ``metarl.families`` from an installed package; entry points
are loaded when an id is not found.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from metarl.task import TaskFamily

ENTRY_POINT_GROUP = "metarl.families"
_ID_RE = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")


class UnknownIdError(KeyError):
    """An id that names no registered family or algorithm."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """What :func:`register` records for one id."""

    id: str
    entry_point: str | Callable[..., TaskFamily]
    defaults: dict[str, Any]

    def load(self) -> Callable[..., TaskFamily]:
        """The family class or factory, importing its module if needed."""
        return _load_object(self.entry_point)


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """What :func:`register_algo` records for one algorithm name."""

    name: str
    entry_point: str | Callable[..., Any]
    kind: str  # "rl", "supervised" or "any"
    summary: str

    def load(self) -> Any:
        """The agent class, importing its module if needed."""
        return _load_object(self.entry_point)


_FAMILIES: dict[str, FamilySpec] = {}
_ALGOS: dict[str, AlgoSpec] = {}
_entry_points_loaded = False


def _load_object(entry_point: str | Callable[..., Any]) -> Any:
    if not isinstance(entry_point, str):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def register(id: str, entry_point: str | Callable[..., TaskFamily], **defaults: Any) -> None:
    """Register a task family under ``id``.

    Args:
        id: versioned id, ``namespace/Name-vN`` (e.g. ``metarl/Bandit-v0``).
        entry_point: the family class (or a factory), or ``"module:Class"``.
        **defaults: keyword arguments the family is built with unless overridden.

    RL families are also registered with Gymnasium, so ``gymnasium.make(id)`` and
    ``gymnasium.make_vec(id, num_envs=N)`` work once this has run.
    """
    if not _ID_RE.match(id):
        raise ValueError(f"family id {id!r} must look like 'namespace/Name-vN', e.g. 'metarl/Bandit-v0'")
    spec = FamilySpec(id, entry_point, dict(defaults))
    old = _FAMILIES.get(id)
    if old is not None and (old.entry_point, old.defaults) != (spec.entry_point, spec.defaults):
        raise ValueError(f"family id {id!r} is already registered with another entry point")
    _FAMILIES[id] = spec
    factory = spec.load()
    if getattr(factory, "kind", None) == "rl" and id not in gym.registry:
        gym.register(
            id=id,
            entry_point=functools.partial(_gym_single_env, id),
            vector_entry_point=functools.partial(_gym_vector_env, id),
        )


def _gym_single_env(family_id: str, render_mode: str | None = None, task: Any = None, **kwargs: Any) -> gym.Env:
    family: Any = make_family(family_id, **kwargs)
    return family.make_env(task, render_mode=render_mode)


def _gym_vector_env(
    family_id: str, num_envs: int = 1, tasks: Any = None, autoreset_mode: Any = "NextStep", **kwargs: Any
) -> gym.vector.VectorEnv:
    kwargs.pop("render_mode", None)
    family: Any = make_family(family_id, **kwargs)
    return family.make_vec_env(num_envs, tasks, autoreset_mode=autoreset_mode)


def _load_builtins() -> None:
    importlib.import_module("envs")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()  # importing the module registers its families
        if callable(obj) and not inspect.isclass(obj):
            obj()


def _find(id: str) -> FamilySpec:
    if ":" in id:
        module_name, _, id = id.partition(":")
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"could not import {module_name!r} to find family {id!r}: {exc}") from exc
    if id in _FAMILIES:
        return _FAMILIES[id]
    _load_builtins()
    if id not in _FAMILIES:
        _load_entry_points()
    if id in _FAMILIES:
        return _FAMILIES[id]
    raise UnknownIdError(_unknown_message("family", id, list(_FAMILIES)))


def _unknown_message(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    # Matching the bare names too catches a wrong namespace or version.
    bare = {k.split("/")[-1].rsplit("-v", 1)[0].lower(): k for k in known}
    key = name.split("/")[-1].rsplit("-v", 1)[0].lower()
    if key in bare and bare[key] not in close:
        close.insert(0, bare[key])
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Known: {', '.join(sorted(known))}."


def family_spec(id: str) -> FamilySpec:
    """The registration record of ``id`` (see :func:`make_family` for the lookup rules)."""
    return _find(id)


def make_family(id: str, **kwargs: Any) -> TaskFamily:
    """Build the family registered as ``id`` with the registered defaults and ``kwargs``.

    ``id`` may be ``module:Name-vN`` to import ``module`` first. An unknown id raises
    :class:`UnknownIdError` naming the close matches; an unknown keyword argument raises
    ``TypeError`` naming the accepted ones.
    """
    spec = _find(id)
    factory = spec.load()
    params = _accepted_kwargs(factory)
    merged = {**spec.defaults, **kwargs}
    unknown = sorted(set(merged) - set(params)) if params is not None else []
    if unknown:
        raise TypeError(
            f"{spec.id} got unknown argument(s) {unknown}; it accepts {', '.join(params or []) or 'none'}"
        )
    family = factory(**merged)
    object.__setattr__(family, "_family_id", spec.id)
    return family


def _accepted_kwargs(factory: Callable[..., Any]) -> list[str] | None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def list_families(kind: str | None = None) -> list[str]:
    """Ids of all registered families (built-ins and entry points), optionally of one kind."""
    _load_builtins()
    _load_entry_points()
    ids = sorted(_FAMILIES)
    if kind is not None:
        ids = [i for i in ids if getattr(_FAMILIES[i].load(), "kind", None) == kind]
    return ids


def register_algo(name: str, entry_point: str | Callable[..., Any], kind: str, summary: str) -> None:
    """Register an algorithm for ``--algo name`` (the agent class or ``"module:Class"``)."""
    if kind not in ("rl", "supervised", "any"):
        raise ValueError(f"kind must be 'rl', 'supervised' or 'any', got {kind!r}")
    _ALGOS[name] = AlgoSpec(name, entry_point, kind, summary)


def algo_spec(name: str) -> AlgoSpec:
    """The registration record of algorithm ``name``; unknown names list close matches."""
    importlib.import_module("agents")
    if name not in _ALGOS:
        raise UnknownIdError(_unknown_message("algorithm", name, list(_ALGOS)))
    return _ALGOS[name]


def list_algos() -> list[AlgoSpec]:
    """All registered algorithms, sorted by name."""
    importlib.import_module("agents")
    return [_ALGOS[k] for k in sorted(_ALGOS)]
