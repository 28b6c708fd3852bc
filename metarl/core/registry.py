"""The registries of task families and algorithms.

Families are registered under versioned ids (``metarl/Bandit-v0``), algorithms under
``--algo`` names. An entry point is the class itself or a ``"module:Class"`` string that is
imported only when the family or algorithm is first used, as Gymnasium registers its
environments: the built-ins are listed as strings in ``metarl/envs/__init__.py`` and
``metarl/agents/__init__.py``, so this module imports none of them and nothing depends on
the order in which modules are imported.

RL families are registered with Gymnasium under the same id too, with both an
``entry_point`` (a single env) and a ``vector_entry_point`` (the family's batched env).

A user plugs in a family by calling :func:`register` in a module they import, by passing
``their_module:TheirFamily-v0`` (the module is imported first), or by publishing an entry
point in the group ``metarl.families`` from an installed package; ``import metarl`` loads
the entry points (as Gymnasium loads its plugins), so their ids work with
``gymnasium.make`` too.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import typing
import warnings
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym

from metarl.core.checks import check_value
from metarl.core.task import TaskFamily

ENTRY_POINT_GROUP = "metarl.families"
_ID_RE = re.compile(r"^(?:[\w.-]+/)?[\w.:-]+-v\d+$")

Kind = Literal["rl", "supervised"]


class UnknownIdError(KeyError):
    """An id that names no registered family or algorithm."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class MissingDependencyError(ImportError):
    """A registered family whose optional dependencies are not installed."""


def load_entry_point(entry_point: str | Callable[..., Any]) -> Any:
    """The object an entry point names: itself, or ``module:attr.path`` imported."""
    if not isinstance(entry_point, str):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _importable(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (MuJoCo takes ~0.4 s)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        return False


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """What :func:`register` records for one id."""

    id: str
    entry_point: str | Callable[..., TaskFamily[Any]]
    kind: Kind
    defaults: dict[str, Any]
    requires: tuple[str, ...] = ()
    extra: str = ""

    @property
    def available(self) -> bool:
        """Whether the modules the family needs are installed."""
        return all(map(_importable, self.requires))

    def load(self) -> Any:
        """The family class (or factory), importing its module if needed."""
        if not self.available:
            missing = [m for m in self.requires if not _importable(m)]
            hint = f': pip install "metarl[{self.extra}]"' if self.extra else ""
            raise MissingDependencyError(f"{self.id} needs {', '.join(missing)}, which is not installed{hint}")
        return load_entry_point(self.entry_point)


@dataclasses.dataclass(frozen=True)
class AlgoSpec:
    """What :func:`register_algo` records for one algorithm name."""

    name: str
    entry_point: str | Callable[..., Any]
    kind: Literal["rl", "supervised", "any"]
    summary: str

    def load(self) -> Any:
        """The agent class, importing its module if needed."""
        return load_entry_point(self.entry_point)


_FAMILIES: dict[str, FamilySpec] = {}
_ALGOS: dict[str, AlgoSpec] = {}
_entry_points_loaded = False


def register(
    id: str,
    entry_point: str | Callable[..., TaskFamily[Any]],
    *,
    kind: Kind | None = None,
    requires: tuple[str, ...] = (),
    extra: str = "",
    **defaults: Any,
) -> None:
    """Register a task family under ``id``.

    Args:
        id: versioned id, ``namespace/Name-vN`` (e.g. ``metarl/Bandit-v0``).
        entry_point: the family class (or a factory), or ``"module:Class"`` (imported when
            the family is first made).
        kind: ``"rl"`` or ``"supervised"``; read from the class when not given (which
            imports a string entry point at once).
        requires: modules the family needs; without them it is not listed, and making it
            says which to install.
        extra: the ``metarl`` extra that installs ``requires`` (for that message).
        **defaults: keyword arguments the family is built with unless overridden.

    RL families are also registered with Gymnasium, so ``gymnasium.make(id)`` and
    ``gymnasium.make_vec(id, num_envs=N)`` work once this has run.
    """
    if not _ID_RE.match(id):
        raise ValueError(f"family id {id!r} must look like 'namespace/Name-vN', e.g. 'metarl/Bandit-v0'")
    if kind is None:
        kind = load_entry_point(entry_point).kind
    if kind not in ("rl", "supervised"):
        raise ValueError(f"kind must be 'rl' or 'supervised', got {kind!r}")
    spec = FamilySpec(id, entry_point, kind, dict(defaults), tuple(requires), extra)
    old = _FAMILIES.get(id)
    if old is not None and old != spec:
        raise ValueError(f"family id {id!r} is already registered with another entry point")
    _FAMILIES[id] = spec
    if kind == "rl" and id not in gym.registry:
        gym.register(
            id=id,
            entry_point=functools.partial(_gym_single_env, id),
            vector_entry_point=functools.partial(_gym_vector_env, id),
        )


def _gym_single_env(family_id: str, render_mode: str | None = None, task: Any = None, **kwargs: Any) -> gym.Env:
    family: Any = make_family(family_id, **kwargs)  # registered with Gymnasium only if kind == "rl"
    return family.make_env(task, render_mode=render_mode)


def _gym_vector_env(
    family_id: str, num_envs: int = 1, tasks: Any = None, autoreset_mode: Any = "NextStep", device: Any = None,
    **kwargs: Any
) -> gym.vector.VectorEnv:
    kwargs.pop("render_mode", None)
    family: Any = make_family(family_id, **kwargs)
    # Only array families take a device; the others keep their signature (and refuse one).
    on_device = {} if device is None else {"device": device}
    return family.make_vec_env(num_envs, tasks, autoreset_mode=autoreset_mode, **on_device)


def load_entry_points() -> None:
    """Load the installed packages' families (entry-point group ``metarl.families``) once; a
    plugin that fails to load is reported as a warning, and the others still load."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()  # importing the module registers its families
            if callable(obj) and not inspect.isclass(obj):
                obj()
        except Exception as exc:  # noqa: BLE001 (a broken plugin must not break metarl)
            warnings.warn(f"metarl: the plugin {ep.name!r} ({ep.value}) failed to load its families: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)


def family_spec(id: str) -> FamilySpec:
    """The registration record of ``id``.

    ``id`` may be ``module:Name-vN`` to import ``module`` first; an id not yet registered
    loads the ``metarl.families`` entry points; an unknown id raises
    :class:`UnknownIdError` naming the close matches.
    """
    if ":" in id:
        module_name, _, id = id.partition(":")
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportError(f"could not import {module_name!r} to find family {id!r}: {exc}") from exc
    if id not in _FAMILIES:
        load_entry_points()
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


def accepted_kwargs(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments ``factory`` accepts (``None``: any, it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def make_family(id: str, **kwargs: Any) -> TaskFamily[Any]:
    """Build the family registered as ``id`` with the registered defaults and ``kwargs``.

    ``id`` may be ``module:Name-vN`` to import ``module`` first. An unknown id raises
    :class:`UnknownIdError` naming the close matches; an unknown keyword argument raises
    ``TypeError`` naming the accepted ones.
    """
    spec = family_spec(id)
    factory = spec.load()
    params = accepted_kwargs(factory)
    merged = {**spec.defaults, **kwargs}
    unknown = sorted(set(merged) - set(params)) if params is not None else []
    if unknown:
        raise TypeError(f"{spec.id} got unknown argument(s) {unknown}; it accepts {', '.join(params or []) or 'none'}")
    if dataclasses.is_dataclass(factory):
        hints = typing.get_type_hints(factory)
        for key, value in merged.items():
            check_value(key, value, hints[key], f"the arguments of {spec.id}")
    family: TaskFamily[Any] = factory(**merged)
    return family


def list_families(kind: Kind | None = None) -> list[str]:
    """Ids of the registered families whose dependencies are installed (built-ins and
    entry points), optionally of one kind."""
    load_entry_points()
    return sorted(i for i, s in _FAMILIES.items() if s.available and (kind is None or s.kind == kind))


def family_specs() -> list[FamilySpec]:
    """Every registered family's record, available or not, sorted by id."""
    load_entry_points()
    return [_FAMILIES[i] for i in sorted(_FAMILIES)]


def register_algo(
    name: str, entry_point: str | Callable[..., Any], kind: Literal["rl", "supervised", "any"], summary: str
) -> None:
    """Register an algorithm for ``--algo name`` (the agent class or ``"module:Class"``)."""
    if kind not in ("rl", "supervised", "any"):
        raise ValueError(f"kind must be 'rl', 'supervised' or 'any', got {kind!r}")
    _ALGOS[name] = AlgoSpec(name, entry_point, kind, summary)


def algo_spec(name: str) -> AlgoSpec:
    """The registration record of algorithm ``name``; unknown names list close matches."""
    if name not in _ALGOS:
        raise UnknownIdError(_unknown_message("algorithm", name, list(_ALGOS)))
    return _ALGOS[name]


def list_algos() -> list[AlgoSpec]:
    """All registered algorithms, sorted by name."""
    return [_ALGOS[k] for k in sorted(_ALGOS)]
