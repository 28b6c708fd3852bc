"""Fixtures shared across the test suite: one torch thread, and tiny synthetic Omniglot data
(folders, zips, one-shot runs) written once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import write_synthetic, write_synthetic_runs

TINY_SETS = {"small1": ["Alpha", "Beta", "Greek"], "small2": ["Greek", "Delta", "Gamma"]}
"""Two background sets sharing Greek, as the minimal sets share Greek and Latin."""


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Small nets run fastest on one thread (as metarl runs them), and CI's cores are shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_omniglot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic Omniglot in the folder layout: 3 alphabets per set, 6 characters of 6 drawings."""
    return write_synthetic(tmp_path_factory.mktemp("omniglot"), TINY_SETS, characters=6, drawings=6, canvas=40)


@pytest.fixture(scope="session")
def tiny_omniglot_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same data as :func:`tiny_omniglot`, as the distributed zips."""
    return write_synthetic(tmp_path_factory.mktemp("omniglot_zip"), TINY_SETS, characters=6, drawings=6, canvas=40,
                           as_zip=True)


@pytest.fixture(scope="session")
def oneshot_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic 4-way runs in the layout of Lake et al.'s one-shot benchmark."""
    return write_synthetic_runs(tmp_path_factory.mktemp("all_runs"), runs=3, ways=4, canvas=40)
