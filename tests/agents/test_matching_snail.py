"""Matching networks and SNAIL: the attention math against hand computation, SNAIL's
causality (a position reads only what came before it, queries never read each other),
smoke training that beats chance on the synthetic blob family, and exact state round trips."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.lstm_learner import LSTMConfig, LSTMLearner
from metarl.agents.matching import Matching, MatchingConfig, MatchingNet
from metarl.agents.snail import SNAIL, SNAILConfig, causal_taps
from metarl.core.seeding import task_rng
from metarl.fewshot.episode import Episode
from metarl.fewshot.losses import cosine_similarities
from metarl.fewshot.sequence import training_rounds
from tests.agents.test_siamese_lstm import BlobFamily, _train


@pytest.fixture(scope="module")
def blobs() -> BlobFamily:
    return BlobFamily()


def test_matching_attention_sums_over_each_class_by_hand():
    net = MatchingNet((1, 16, 16), MatchingConfig(channels=4, scale=2.0))
    support = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    y = torch.tensor([[0, 1, 0]])
    query = torch.tensor([[[2.0, 0.0]]])
    cos = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])
    torch.testing.assert_close(cosine_similarities(query, support)[0, 0], cos)
    a = torch.softmax(2.0 * cos, 0)  # eq. 2 with the scale
    expected = torch.log(torch.stack([a[0] + a[2], a[1]]))  # eq. 1: attention summed per class
    torch.testing.assert_close(net.log_probs(support, y, query, 2)[0, 0], expected)


@pytest.mark.parametrize("fce", [False, True])
def test_matching_beats_chance_and_resumes_exactly(blobs, fce):
    cfg = MatchingConfig(iterations=40, train_ways=0, train_queries=3, meta_batch=4, channels=8, lr=3e-3,
                         curve_every=0, fce=fce, fce_steps=2)
    agent = Matching(cfg, blobs, seed=0)
    _train(agent, 40)
    tasks = blobs.sample_tasks(60, "test", task_rng(0, "test"))
    result = agent.evaluate(tasks, seed=1)
    assert result.scores.mean() > 0.6, result.scores.mean()  # chance is 1/3
    again = Matching(cfg, blobs, seed=0)
    again.load_state_dict(copy.deepcopy(agent.state_dict()))  # a copy: the optimisers must not share moments
    np.testing.assert_array_equal(again.evaluate(tasks[:10], seed=2).curve, agent.evaluate(tasks[:10], seed=2).curve)
    a, b = agent.train_iteration().scalars, again.train_iteration().scalars
    assert a == b  # the same streams: the next update is the same


def test_matching_needs_a_classification_family():
    with pytest.raises(ValueError, match="matching classifies"):
        Matching(MatchingConfig(), metarl.make_family("metarl/Sinusoid-v0"))
    with pytest.raises(ValueError, match="--scale"):
        MatchingConfig(scale=0.0)


def test_causal_taps_read_dilation_steps_back():
    s = torch.arange(1.0, 5.0).view(1, 4, 1)  # support positions 0..3 hold 1..4
    q = torch.zeros(1, 3, 1)
    back_s, back_q = causal_taps(s, q, torch.tensor([0, 2, 4]), 2)
    assert back_s.flatten().tolist() == [0, 0, 1, 2]
    assert back_q.flatten().tolist() == [0, 1, 3]  # a query at position p reads position p - 2


def test_snail_reads_only_the_past():
    family = BlobFamily(ways=3, shots=2, queries=2)
    agent = SNAIL(SNAILConfig(filters=4, width=8), family, seed=0)
    agent.net.eval()
    ep = family.sample_episodes(family.sample_tasks(2, "test"), 2, 2, np.random.default_rng(0))
    with torch.no_grad():
        out = agent.net(ep, 3, [0, 1, 2])  # any support order is a sequence to the net
        assert out.shape == (2, 3, 6, 3)
        changed = Episode(ep.support_x.clone(), ep.support_y, ep.query_x.clone(), ep.query_y)
        changed.support_x[:, 4] += 1.0  # position 4: in the second round
        out2 = agent.net(changed, 3, [0, 1, 2])
        torch.testing.assert_close(out2[:, :2], out[:, :2])  # after 0 and 1 rounds: unchanged
        assert not torch.allclose(out2[:, 2], out[:, 2])
        changed.query_x[:, 0] += 1.0  # another query: no other query sees it
        out3 = agent.net(changed, 3, [0, 1, 2])
        torch.testing.assert_close(out3[:, :, 1:], out2[:, :, 1:])


def test_training_rounds_follow_the_shots_curve():
    assert training_rounds(1) == [1]
    assert training_rounds(5) == [1, 2, 5]
    assert training_rounds(10) == [1, 2, 5, 10]
    assert training_rounds(12) == [1, 2, 5, 10, 12]
    assert training_rounds(100) == [1, 2, 5, 10, 20, 50, 100]


def test_snail_beats_chance_on_images_and_resumes(blobs):
    family = dataclasses.replace(blobs, shots=2)
    cfg = SNAILConfig(iterations=120, meta_batch=8, filters=8, width=16, lr=3e-3, train_queries=2)
    agent = SNAIL(cfg, family, seed=0)
    _train(agent, 120)
    tasks = blobs.sample_tasks(60, "test", task_rng(0, "test"))
    result = agent.evaluate(tasks, seed=1)
    means = result.curve.mean(0)
    assert result.x == [0, 1, 2] and means[-1] > 0.6 and means[-1] > means[0] + 0.2, means
    again = SNAIL(cfg, family, seed=0)
    again.load_state_dict(copy.deepcopy(agent.state_dict()))
    np.testing.assert_array_equal(again.evaluate(tasks[:10], seed=2).curve, agent.evaluate(tasks[:10], seed=2).curve)


def test_snail_lowers_sinusoid_error():
    family = metarl.make_family("metarl/Sinusoid-v0", shots=5, queries=20)
    agent = SNAIL(SNAILConfig(iterations=80, meta_batch=16, width=16, lr=3e-3), family, seed=0)
    tasks = family.sample_tasks(100, "test", task_rng(0, "test"))
    before = agent.evaluate(tasks, seed=1)
    _train(agent, 80)
    after = agent.evaluate(tasks, seed=1)
    assert after.scores.mean() < 0.8 * before.scores.mean(), (before.scores.mean(), after.scores.mean())
    assert after.curve.mean(0)[-1] < after.curve.mean(0)[0]


def test_sequence_learners_refuse_bad_settings():
    with pytest.raises(ValueError, match="--width"):
        SNAILConfig(width=6)
    with pytest.raises(ValueError, match="--augment distorts images"):
        SNAIL(SNAILConfig(augment=True), metarl.make_family("metarl/Sinusoid-v0"))


def test_sequence_learners_decay_the_rate_and_distort_only_training_images(blobs):
    agent = LSTMLearner(LSTMConfig(iterations=10, lr=1e-3, lr_decay=True, augment=True, meta_batch=2, filters=4,
                                   hidden_size=8), blobs, seed=0)
    assert agent.scheduled_lr() == pytest.approx(1e-3)
    agent.iterations = 5
    assert agent.scheduled_lr() == pytest.approx(0.5e-3)
    agent.iterations = 10
    assert agent.scheduled_lr() == pytest.approx(0.0, abs=1e-12)
    episode = agent.train_episodes()
    distorted = agent._augmented(episode)
    assert distorted.support_x.shape == episode.support_x.shape and not torch.equal(distorted.query_x, episode.query_x)
    assert torch.equal(distorted.query_y, episode.query_y)
    agent.iterations = 0
    assert np.isfinite(agent.train_iteration().scalars["train/loss"])
