"""Every random stream in metarl, derived from one seed.

A run's seed is split into independent child streams of ``numpy.random.SeedSequence(seed)``,
one per purpose (task sampling per split, environment resets, example draws, evaluation,
non-learning policies), so that adding draws to one stream never shifts another, and a
stream depends only on the seed and its purpose. Global random state is never read or
written: networks are initialised inside :func:`torch_seeded`, and sampling uses explicit
generators.

:class:`Streams` bundles an agent's named streams so that checkpoints save and restore them
together (a resumed run continues every stream exactly where it stopped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

SPLITS: tuple[str, ...] = ("train", "test", "ood")
"""The three splits every family documents."""

# Spawn keys of the child streams. They are fixed numbers, not positions: a stream keeps
# its key when others are added, so a seed gives the same tasks in every metarl version.
TASK_KEY = 7919  # tasks of split i: spawn key (TASK_KEY, i)
ENV_KEY = 1  # environment resets during training
DATA_KEY = 2  # supervised examples during training; environment resets in MAML-PG evaluation
EVAL_KEY = 3  # supervised evaluation episodes; training-task curves (EVAL_KEY, iteration)
SHOTS_KEY = 31  # episodes of the shots curve of few-shot classifiers
RANK_KEY = 1009  # a data-parallel process's own streams: (KEY, RANK_KEY, rank) for ranks > 0
# ``run_trials`` seeds batch b's env with ``seed + b``, and Gymnasium turns that seed into
# ``Generator(PCG64(SeedSequence(seed)))``: a policy seeded the same way would draw the
# environment's own numbers, so its choices would be correlated with the rewards.
POLICY_KEY = 104729


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`, else raise a helpful error."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def stream(seed: int, *key: int) -> np.random.Generator:
    """The child stream ``key`` of ``SeedSequence(seed)``: independent of every other key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def task_rng(seed: int, split: str) -> np.random.Generator:
    """The generator that samples ``split``'s tasks for a given seed.

    Each split has its own child stream, so train, test and ood tasks are drawn from
    disjoint, independent streams: a test task is never a train task drawn twice, whatever
    the number of tasks sampled.
    """
    return stream(seed, TASK_KEY, SPLITS.index(check_split(split)))


def policy_rng(seed: int) -> np.random.Generator:
    """The generator of a non-learning policy evaluated with ``seed`` (see ``POLICY_KEY``)."""
    return stream(seed, POLICY_KEY)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU random state seeded by ``seed``, then restore it.

    For building networks: modules initialise from the global generator, and this makes
    that initialisation a function of the seed without touching anyone else's state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Streams:
    """Named random streams (NumPy generators and torch generators) saved as one.

    ``state_dict()`` maps each name to its generator's state and ``load_state_dict`` restores
    the names it finds, so a checkpoint written without a stream (an older one) keeps the
    fresh stream.
    """

    def __init__(self, **streams: np.random.Generator | torch.Generator):
        self._streams = dict(streams)

    def add(self, **streams: np.random.Generator | torch.Generator) -> None:
        """Add streams (a subclass's own) to be saved with the others."""
        self._streams.update(streams)

    def state_dict(self) -> dict[str, Any]:
        """Each stream's state, by name."""
        return {
            name: g.get_state() if isinstance(g, torch.Generator) else g.bit_generator.state
            for name, g in self._streams.items()
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the streams present in ``state``."""
        for name, g in self._streams.items():
            if name not in state:
                continue
            if isinstance(g, torch.Generator):
                g.set_state(state[name])
            else:
                g.bit_generator.state = state[name]
