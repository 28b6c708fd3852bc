"""metarl: meta-learning (meta-RL and few-shot learning) in one episodic framework.

The public API: the registry (:func:`register`, :func:`make_family`, :func:`list_families`,
:func:`register_algo`, :func:`list_algos`), tasks and families (:class:`Task`,
:class:`TaskFamily`, :data:`SPLITS`), the task streams (:func:`task_rng`) and the conformance
suite (:func:`check_family`). Importing
``metarl`` registers the built-in families (with Gymnasium too) and algorithms by name; no
family or algorithm module is imported until it is used. ARCHITECTURE.md describes the
layers.
"""

from metarl.core.registry import (
    UnknownIdError,
    list_algos,
    list_families,
    make_family,
    register,
    register_algo,
)
from metarl.core.seeding import SPLITS, task_rng
from metarl.core.task import Task, TaskFamily
from metarl.core.version import __version__

# The built-in registration tables (strings only: they import no family or algorithm).
from metarl import agents as _agents  # noqa: E402,F401  # isort: skip
from metarl import envs as _envs  # noqa: E402,F401  # isort: skip
from metarl.core.registry import load_entry_points as _load_entry_points  # noqa: E402  # isort: skip

_load_entry_points()  # installed plugins' families, so that gymnasium.make knows their ids


def __getattr__(name: str) -> object:
    # The conformance suite pulls in the RL and few-shot layers: imported on first use only.
    if name == "check_family":
        from metarl.conformance import check_family

        return check_family
    raise AttributeError(f"module 'metarl' has no attribute {name!r}")


__all__ = [
    "__version__",
    "check_family",
    "SPLITS",
    "Task",
    "TaskFamily",
    "UnknownIdError",
    "list_algos",
    "list_families",
    "make_family",
    "register",
    "register_algo",
    "task_rng",
]
