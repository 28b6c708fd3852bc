"""Smoke tests of the Siamese network, the LSTM meta-learner and MAML on classification:
each beats chance on a tiny synthetic image family after a few seconds of training, and
the LSTM learner lowers the sinusoid error."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.lstm_learner import LSTMConfig, LSTMLearner
from metarl.agents.maml import MAML, MAMLConfig
from metarl.agents.siamese import Siamese, SiameseConfig
from metarl.core.seeding import task_rng
from metarl.core.task import Task
from metarl.fewshot.data import ClassDataset, rotation_classes
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import ClassificationFamily


@dataclasses.dataclass(frozen=True)
class BlobTask(Task):
    classes: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class BlobFamily(ClassificationFamily[BlobTask]):
    """Each class is a fixed random 4x4 block pattern on a 16x16 image; examples add noise.
    Classes 0-39 train, 40-59 test, 60-79 ood; labels are remapped per episode."""

    ways: int = 3
    shots: int = 1
    queries: int = 5
    noise: float = 0.6

    task_type = BlobTask

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, 16, 16)

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[BlobTask]:
        start = {"train": 0, "test": 40, "ood": 60}[split]
        pool = 40 if split == "train" else 20
        return [BlobTask(tuple(int(c) for c in start + rng.choice(pool, self.ways, replace=False))) for _ in range(n)]

    @staticmethod
    def prototype(c: int) -> np.ndarray:
        blocks = np.random.default_rng(1000 + c).choice([-1.0, 1.0], size=(4, 4))
        return np.kron(blocks, np.ones((4, 4)))[None]

    def _sample_episodes(self, tasks: Sequence[BlobTask], shots: int, queries: int, rng: np.random.Generator) -> Episode:
        return Episode.stack([self._episode(t, shots, queries, rng) for t in tasks])

    def _episode(self, task: BlobTask, shots: int, queries: int, rng: np.random.Generator) -> Episode:
        labels = rng.permutation(self.ways)
        xs, ys = [], []
        for label, c in zip(labels, task.classes, strict=True):
            xs.append(self.prototype(c) + self.noise * rng.standard_normal((shots + queries, 1, 16, 16)))
            ys.append(np.full(shots + queries, label))
        x = torch.tensor(np.stack(xs), dtype=torch.float32)  # [ways, shots + queries, 1, 16, 16]
        y = torch.tensor(np.stack(ys))
        return Episode(x[:, :shots].flatten(0, 1), y[:, :shots].flatten(), x[:, shots:].flatten(0, 1), y[:, shots:].flatten())

    def examples_available(self, tasks: Sequence[BlobTask]) -> int:
        return 1_000_000  # drawn afresh: any number

    def class_dataset(self, split: str = "train") -> tuple[ClassDataset, np.ndarray, np.ndarray]:
        start, pool = (0, 40) if split == "train" else (40, 20)
        rng = np.random.default_rng(7)
        classes = [(self.prototype(c) + self.noise * rng.standard_normal((20, 1, 16, 16))).astype(np.float32)
                   for c in range(start, start + pool)]
        rows, turns = rotation_classes(pool, rotations=False)
        return ClassDataset.from_classes(classes, scale=1.0), rows, turns


@pytest.fixture(scope="module")
def blobs() -> BlobFamily:
    return BlobFamily()


def _train(agent, iterations: int) -> None:
    for _ in range(iterations):
        agent.train_iteration()


def test_siamese_beats_chance_and_classifies(blobs):
    agent = Siamese(SiameseConfig(iterations=40, train_ways=0, train_queries=3, meta_batch=4, channels=8,
                                  embedding=16, lr=3e-3, curve_every=0), blobs, seed=0)
    _train(agent, 40)
    tasks = blobs.sample_tasks(60, "test", task_rng(0, "test"))
    result = agent.evaluate(tasks, seed=1)
    assert result.curve_name == "query_accuracy" and result.x_name == "shots"
    assert result.scores.mean() > 0.6, result.scores.mean()  # chance is 1/3
    ep = blobs.sample_episode(tasks[0], 1, 4, np.random.default_rng(0))
    labels = agent.classify(ep)
    assert labels.shape == (12,) and set(labels.tolist()) <= {0, 1, 2}


def test_siamese_refuses_regression_families():
    with pytest.raises(ValueError, match="siamese classifies, but SinusoidFamily is a regression family"):
        Siamese(SiameseConfig(), metarl.make_family("metarl/Sinusoid-v0"))


def test_lstm_learner_beats_chance_on_images(blobs):
    cfg = LSTMConfig(iterations=120, meta_batch=8, hidden_size=32, filters=8, lr=3e-3, train_shots=2, train_queries=2)
    agent = LSTMLearner(cfg, dataclasses.replace(blobs, shots=2), seed=0)
    _train(agent, 120)
    result = agent.evaluate(blobs.sample_tasks(60, "test", task_rng(0, "test")), seed=1)
    assert result.x == [0, 1, 2] and result.curve_name == "query_accuracy"
    means = result.curve.mean(0)
    assert means[-1] > 0.6 and means[-1] > means[0] + 0.2, means  # it learns from the shots it reads
    batch = dataclasses.replace(blobs, shots=2).sample_episodes(blobs.sample_tasks(2, "test"), 2, 3, np.random.default_rng(0))
    assert agent.classify(batch).shape == (2, 9)


def test_lstm_learner_lowers_sinusoid_error():
    family = metarl.make_family("metarl/Sinusoid-v0", shots=5, queries=20)
    agent = LSTMLearner(LSTMConfig(iterations=80, meta_batch=16, hidden_size=32, lr=3e-3), family, seed=0)
    tasks = family.sample_tasks(100, "test", task_rng(0, "test"))
    before = agent.evaluate(tasks, seed=1)
    _train(agent, 80)
    after = agent.evaluate(tasks, seed=1)
    assert after.x == list(range(6)) and after.score_name == "query_mse_shots_5"
    assert after.scores.mean() < 0.8 * before.scores.mean(), (before.scores.mean(), after.scores.mean())
    assert after.curve.mean(0)[-1] < after.curve.mean(0)[0]  # more points, lower error
    state = agent.state_dict()
    again = LSTMLearner(agent.config, family, seed=0)
    again.load_state_dict(state)
    np.testing.assert_array_equal(again.evaluate(tasks[:10], seed=2).curve, agent.evaluate(tasks[:10], seed=2).curve)


def test_maml_classifies_images(blobs):
    cfg = MAMLConfig(iterations=30, meta_batch=4, inner_lr=0.4, eval_inner_steps=3, filters=8, train_queries=2)
    agent = MAML(cfg, blobs, seed=0)
    _train(agent, 30)
    result = agent.evaluate(blobs.sample_tasks(60, "test", task_rng(0, "test")), seed=1)
    assert result.curve_name == "query_accuracy" and result.x == [0, 1, 2, 3]
    assert result.scores.mean() > 0.6, result.curve.mean(0)
    # a 2-way episode on the 3-way model uses the first two outputs; more ways than outputs is an error
    two = BlobFamily(ways=2)
    ep = two.sample_episode(two.sample_tasks(1, "test")[0], 1, 3, np.random.default_rng(0))
    assert set(agent.classify(ep).tolist()) <= {0, 1}
    five = BlobFamily(ways=5)
    with pytest.raises(ValueError, match="trained for 3"):
        agent.classify(five.sample_episode(five.sample_tasks(1, "test")[0], 1, 1, np.random.default_rng(0)))
