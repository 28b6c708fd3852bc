"""Episode sampling from class-indexed data: shapes, disjointness, label remapping, rotations,
shot subsets, regression splits and the shots-curve bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.core.errors import DatasetError
from metarl.fewshot.data import (
    ClassDataset,
    classification_episodes,
    labelled_batch,
    regression_episode,
    rotation_classes,
)
from metarl.fewshot.episode import Episode
from metarl.fewshot.evaluation import curve_shots, first_shots


def id_dataset(classes: int = 10, count: int = 8, ragged: bool = False) -> ClassDataset:
    """Examples whose pixels encode their identity: image of (c, i) = [[c, i], [0, 0]] (unrotated)."""
    arrays = []
    for c in range(classes):
        n = count - (c % 3 if ragged else 0)
        img = np.zeros((n, 1, 2, 2), dtype=np.float32)
        img[:, 0, 0, 0] = c
        img[:, 0, 0, 1] = np.arange(n)
        arrays.append(img)
    return ClassDataset.from_classes(arrays, scale=1.0)


def one_episode(data: ClassDataset, classes: list[int], shots: int, queries: int, rng: np.random.Generator,
                quarter_turns: list[int] | None = None) -> Episode:
    """One unbatched N-way K-shot episode."""
    turns = None if quarter_turns is None else np.asarray(quarter_turns)[None]
    return classification_episodes(data, np.asarray(classes)[None], shots, queries, rng, turns).unbatched()


def ids(x: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in x[..., 0, 0, :].reshape(-1, 2).tolist()}


def test_episode_shapes_labels_and_disjoint_support_query():
    data = id_dataset()
    classes = np.array([[3, 7, 1, 9, 0], [2, 4, 6, 8, 5]])
    ep = classification_episodes(data, classes, shots=2, queries=3, rng=np.random.default_rng(0))
    assert ep.support_x.shape == (2, 10, 1, 2, 2) and ep.query_x.shape == (2, 15, 1, 2, 2)
    assert ep.support_y.dtype == torch.int64 and ep.support_x.dtype == torch.float32
    for b in range(2):
        assert sorted(ep.support_y[b].tolist()) == sorted(list(range(5)) * 2)
        assert sorted(ep.query_y[b].tolist()) == sorted(list(range(5)) * 3)
        assert not ids(ep.support_x[b]) & ids(ep.query_x[b]), "support and query share an example"
        assert len(ids(ep.support_x[b])) == 10 and len(ids(ep.query_x[b])) == 15
        # Each label names one class of the task, the same in support and query.
        for label in range(5):
            cs = {c for c, _ in ids(ep.support_x[b][ep.support_y[b] == label])}
            cq = {c for c, _ in ids(ep.query_x[b][ep.query_y[b] == label])}
            assert cs == cq and len(cs) == 1 and cs <= set(classes[b].tolist())


def test_labels_are_remapped_at_random_per_episode():
    data = id_dataset()
    seen = set()
    rng = np.random.default_rng(1)
    for _ in range(40):
        ep = one_episode(data, [0, 1, 2], shots=1, queries=1, rng=rng)
        seen.add(int(ep.support_y[ep.support_x[:, 0, 0, 0] == 0][0]))
    assert seen == {0, 1, 2}, "class 0 must get every label over episodes"


def test_same_seed_same_episode_and_padding_is_never_sampled():
    data = id_dataset(ragged=True)
    classes = np.arange(10).reshape(2, 5)
    a = classification_episodes(data, classes, 1, 5, np.random.default_rng(3))
    b = classification_episodes(data, classes, 1, 5, np.random.default_rng(3))
    for u, v in zip((a.support_x, a.support_y, a.query_x, a.query_y), (b.support_x, b.support_y, b.query_x, b.query_y),
                    strict=True):
        assert torch.equal(u, v)
    for _ in range(20):
        ep = classification_episodes(data, classes, 1, 5, np.random.default_rng(_))
        for c, i in ids(torch.cat([ep.support_x, ep.query_x], 1)):
            assert i < data.counts[c], "a padding row was sampled"


def test_too_few_examples_and_repeated_classes_are_errors():
    data = id_dataset(count=4)
    with pytest.raises(DatasetError, match="need 5 examples per class"):
        classification_episodes(data, np.array([[0, 1]]), 2, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct"):
        classification_episodes(data, np.array([[0, 0]]), 1, 1, np.random.default_rng(0))
    # The same class under two rotations is two classes.
    classification_episodes(data, np.array([[0, 0]]), 1, 1, np.random.default_rng(0), np.array([[0, 1]]))


def test_rotation_augmentation_makes_four_times_the_classes_and_rotates_images():
    base, turns = rotation_classes(7, rotations=True)
    assert len(base) == 28 and set(zip(base.tolist(), turns.tolist(), strict=True)) == {
        (c, r) for c in range(7) for r in range(4)}
    assert len(rotation_classes(7, rotations=False)[0]) == 7
    img = np.arange(9, dtype=np.float32).reshape(1, 1, 1, 3, 3)
    data = ClassDataset(np.repeat(img, 2, axis=1), np.array([2]), scale=1.0)
    for r in range(4):
        ep = one_episode(data, [0], 1, 1, np.random.default_rng(0), quarter_turns=[r])
        np.testing.assert_array_equal(ep.support_x[0, 0].numpy(), np.rot90(img[0, 0, 0], r))


def test_first_shots_selects_nested_k_per_class_subsets():
    data = id_dataset()
    ep = classification_episodes(data, np.array([[0, 1, 2, 3]] * 3), 5, 1, np.random.default_rng(0))
    previous = [set() for _ in range(3)]
    for k in (1, 2, 5):
        chosen = first_shots(ep.support_y, 4, k)
        assert chosen.shape == (3, 4 * k)
        positions = [set(p) for p in chosen.tolist()]
        for b in range(3):
            assert sorted(ep.support_y[b, chosen[b]].tolist()) == sorted(list(range(4)) * k)
            assert previous[b] <= positions[b], "k-shot supports must be nested"
        previous = positions


def test_labelled_batch_labels_match_images():
    data = id_dataset(classes=5)
    rows, turns = rotation_classes(5, rotations=False)
    x, y = labelled_batch(data, rows, turns, 64, np.random.default_rng(0))
    assert x.shape == (64, 1, 2, 2)
    assert torch.equal(x[:, 0, 0, 0].long(), y)


def test_regression_episode_splits_support_and_query():
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (4, 15, 1))
    ep = regression_episode(x, np.sin(x), shots=5)
    assert ep.support_x.shape == (4, 5, 1) and ep.query_x.shape == (4, 10, 1)
    assert torch.allclose(ep.support_y, torch.sin(ep.support_x), atol=1e-6)
    single = regression_episode(x[0], np.sin(x[0]), shots=10)
    assert single.support_x.shape == (10, 1) and single.query_y.shape == (5, 1)
    with pytest.raises(ValueError):
        regression_episode(x, np.sin(x), shots=0)


def test_curve_shots_fit_the_data():
    assert curve_shots(1, 15, 20) == ([1, 2, 5, 10], 10)
    assert curve_shots(1, 3, 8) == ([1, 2, 5], 3)
    assert curve_shots(3, 15, 20) == ([1, 2, 3, 5, 10], 10)
    with pytest.raises(DatasetError):
        curve_shots(5, 1, 5)
