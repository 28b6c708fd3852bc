"""The digits family: scikit-learn's bundled copy, shapes, classes, disjoint support and query."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")

from metarl.core.registry import make_family  # noqa: E402
from metarl.core.seeding import task_rng  # noqa: E402
from metarl.envs.digits import load_digits  # noqa: E402


def test_the_bundled_digits_load_without_a_download() -> None:
    train, test = load_digits(28)
    assert train.examples.shape[0] == test.examples.shape[0] == 10
    assert int(train.counts.sum() + test.counts.sum()) == 1797
    assert train.examples.dtype == np.uint8 and train.examples.shape[2:] == (1, 28, 28)
    # Strokes are bright on a dark background, as Omniglot's are after preprocessing.
    assert train.examples[0, 0, 0, 0, 0] == 0 and train.examples[0, 0].max() > 200


@pytest.mark.parametrize("shots", [1, 5, 10])
def test_episodes(shots: int) -> None:
    family = make_family("metarl/Digits-v0", shots=shots)
    tasks = family.sample_tasks(8, "test", task_rng(0, "test"))
    assert all(sorted(t.digits) == list(range(10)) for t in tasks)
    ep = family.sample_episodes(tasks, shots, 5, np.random.default_rng(0))
    assert ep.support_x.shape == (8, 10 * shots, 1, 28, 28) and ep.query_x.shape == (8, 50, 1, 28, 28)
    assert torch.equal(torch.bincount(ep.support_y[0], minlength=10), torch.full((10,), shots))
    # No image is both a support and a query example of an episode.
    for b in range(8):
        support = {x.numpy().tobytes() for x in ep.support_x[b]}
        assert not support & {x.numpy().tobytes() for x in ep.query_x[b]}


def test_train_and_test_halves_are_disjoint() -> None:
    train, test = load_digits(8)
    a = {x.tobytes() for c in range(10) for x in train.examples[c, : train.counts[c]]}
    b = {x.tobytes() for c in range(10) for x in test.examples[c, : test.counts[c]]}
    assert len(a & b) <= 5  # the UCI set holds a few identical scans; no drawing is shared by index


def test_fewer_ways_and_bad_arguments() -> None:
    family = make_family("metarl/Digits-v0", ways=5)
    (task,) = family.sample_tasks(1, "train")
    assert len(task.digits) == 5 and task.split == "train"
    with pytest.raises(ValueError, match="ways"):
        make_family("metarl/Digits-v0", ways=11)
