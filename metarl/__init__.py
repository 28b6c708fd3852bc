"""metarl: meta-learning (meta-RL and few-shot learning) in one episodic framework."""

from metarl.registry import (
    UnknownIdError,
    list_algos,
    list_families,
    make_family,
    register,
    register_algo,
)
from metarl.task import SPLITS, Task, TaskFamily, task_rng

__version__ = "0.1.0"

__all__ = [
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

# Registering the built-in families makes gymnasium.make("metarl/...") work after `import metarl`.
import envs as _builtin_families  # noqa: E402,F401
