"""Conformance tests run for every registered supervised family (classification and
regression), so a new family is covered the moment it is registered: episode shapes and
dtypes, support/query disjointness, label remapping, batched episodes, and reproducibility.
Families whose data is absent (Omniglot without its files) are skipped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import metarl
from metarl.core.errors import DatasetNotFoundError
from metarl.core.seeding import task_rng
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import SupervisedFamily

SUPERVISED = metarl.list_families(kind="supervised")
SHOTS, QUERIES = 2, 3


def _family(family_id: str) -> SupervisedFamily:
    family = metarl.make_family(family_id)
    assert isinstance(family, SupervisedFamily)
    try:
        family.sample_tasks(1, "train")
        family.sample_tasks(1, "test")
    except DatasetNotFoundError as exc:
        pytest.skip(f"{family_id}: data absent ({exc})")
    return family


def _counts(family: SupervisedFamily) -> tuple[int, int]:
    """Expected support and query rows: per class for classification."""
    ways = family.num_outputs if family.problem == "classification" else 1
    return SHOTS * ways, QUERIES * ways


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def test_there_are_supervised_families():
    assert "metarl/Omniglot-v0" in SUPERVISED


@pytest.mark.parametrize("family_id", SUPERVISED)
def test_episode_shapes_and_dtypes(family_id):
    family = _family(family_id)
    assert family.problem in ("classification", "regression")
    for split in metarl.SPLITS:
        task = family.sample_tasks(1, split, task_rng(0, split))[0]
        ep = family.sample_episode(task, SHOTS, QUERIES, np.random.default_rng(0))
        n_support, n_query = _counts(family)
        assert ep.support_x.shape == (n_support, *family.input_shape), split
        assert ep.query_x.shape == (n_query, *family.input_shape), split
        assert len(ep.support_y) == n_support and len(ep.query_y) == n_query
        assert ep.support_x.dtype == ep.query_x.dtype == torch.float32
        assert torch.isfinite(ep.support_x).all() and torch.isfinite(ep.query_x).all()
        if family.problem == "classification":
            assert ep.support_y.dtype == ep.query_y.dtype == torch.int64
        else:
            assert ep.support_y.shape[1:] == ep.query_y.shape[1:]
            assert int(np.prod(ep.support_y.shape[1:])) == family.num_outputs


@pytest.mark.parametrize("family_id", SUPERVISED)
def test_support_and_query_are_disjoint(family_id):
    family = _family(family_id)
    rng = np.random.default_rng(1)
    for task in family.sample_tasks(5, "test", task_rng(1, "test")):
        ep = family.sample_episode(task, SHOTS, QUERIES, rng)
        assert not _rows(ep.support_x) & _rows(ep.query_x), "a support example reappears among the queries"
        assert len(_rows(ep.support_x)) == len(ep.support_x), "a support example is repeated"


@pytest.mark.parametrize("family_id", SUPERVISED)
def test_classification_labels_are_remapped_to_0_ways(family_id):
    family = _family(family_id)
    if family.problem != "classification":
        pytest.skip("regression family: no class labels to remap")
    ways = family.num_outputs
    rng = np.random.default_rng(2)
    task = family.sample_tasks(1, "train", task_rng(2, "train"))[0]
    labels_of: dict[bytes, list[int]] = {}  # each example drawn, and the label it got in each episode
    for _ in range(12):
        ep = family.sample_episode(task, SHOTS, QUERIES, rng)
        assert torch.bincount(ep.support_y, minlength=ways).tolist() == [SHOTS] * ways
        assert torch.bincount(ep.query_y, minlength=ways).tolist() == [QUERIES] * ways
        for x, y in zip(torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y]), strict=True):
            labels_of.setdefault(x.numpy().tobytes(), []).append(int(y))
    recurring = [labels for labels in labels_of.values() if len(labels) > 1]
    if len(recurring) >= 5:  # examples drawn in several episodes tell whether their class kept its label
        assert any(len(set(labels)) > 1 for labels in recurring), "labels must be remapped per episode"


@pytest.mark.parametrize("family_id", SUPERVISED)
def test_same_seed_same_episode_and_batched_episodes(family_id):
    family = _family(family_id)
    tasks = family.sample_tasks(4, "train", task_rng(3, "train"))
    a = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(5))
    b = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(5))
    for u, v in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True):
        assert torch.equal(u, v), "same task and seed must give the same episode"
    c = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(6))
    assert not torch.equal(a.query_x, c.query_x), "another seed must give another episode"
    batch = family.sample_episodes(tasks, SHOTS, QUERIES, np.random.default_rng(5))
    assert isinstance(batch, Episode)
    n_support, n_query = _counts(family)
    assert batch.support_x.shape == (4, n_support, *family.input_shape)
    assert batch.query_x.shape == (4, n_query, *family.input_shape)
    assert batch.support_y.shape[:2] == (4, n_support) and batch.query_y.shape[:2] == (4, n_query)
    again = family.sample_episodes(tasks, SHOTS, QUERIES, np.random.default_rng(5))
    assert torch.equal(batch.query_x, again.query_x)
