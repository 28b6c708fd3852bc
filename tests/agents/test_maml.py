"""Supervised MAML / Meta-SGD: the inner step by hand, vmap against a loop on Conv-4,
learning on sinusoids, exact resume, and the train / evaluate CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import metarl
from metarl import evaluate, train
from metarl.agents.maml import MAML, MAMLConfig
from metarl.core.inner_loop import adapt, batched_forward, forward_with, params_of
from metarl.core.seeding import task_rng
from metarl.fewshot.episode import Episode
from metarl.fewshot.models import maml_conv4
from metarl.run.logger import read_scalars


@pytest.fixture(scope="module")
def sinusoid():
    return metarl.make_family("metarl/Sinusoid-v0")


def _episode() -> Episode:
    x = torch.tensor([[[-1.0], [0.5], [2.0]]])
    return Episode(x, 3.0 * x + 1.0, x.clone(), 3.0 * x + 1.0)


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_inner_step_matches_hand_computation_on_a_linear_model(sinusoid, meta_sgd):
    agent = MAML(MAMLConfig(hidden=(), inner_lr=0.1, meta_sgd=meta_sgd), sinusoid, seed=0)
    if meta_sgd:  # distinct learned step sizes for the weight and the bias
        agent.step_sizes.values[0].data.fill_(0.2)
    ep = _episode()
    w, b = agent.model[1].weight.detach().item(), agent.model[1].bias.detach().item()
    x, y = ep.support_x[0, :, 0].numpy(), ep.support_y[0, :, 0].numpy()
    resid = w * x + b - y
    grad_w, grad_b = 2 * np.mean(resid * x), 2 * np.mean(resid)  # d/dw, d/db of mean((wx + b - y)^2)
    lr_w = 0.2 if meta_sgd else 0.1
    adapted = agent.adapt_episode(ep, steps=1, first_order=False)[1]
    assert adapted["1.weight"].item() == pytest.approx(w - lr_w * grad_w, rel=1e-5)
    assert adapted["1.bias"].item() == pytest.approx(b - 0.1 * grad_b, rel=1e-5)


def test_vmap_meta_gradient_of_conv4_equals_a_loop_over_tasks():
    """The Conv-4's batch norm is written with primitives because nn.BatchNorm2d's double
    backward is wrong under vmap (see TaskBatchNorm2d); this pins the fix."""
    torch.manual_seed(0)
    body, size = maml_conv4((1, 16, 16), filters=3)
    net = torch.nn.Sequential(body, torch.nn.Linear(size, 2)).double()
    params = params_of(net)
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.randn(3, 4, 1, 16, 16, generator=g).double(), torch.randn(3, 4, 1, 16, 16, generator=g).double()
    sy, qy = torch.randint(0, 2, (3, 4), generator=g), torch.randint(0, 2, (3, 4), generator=g)

    def ce(forward, batch):
        return torch.nn.functional.cross_entropy(forward(batch[0]), batch[1])

    from metarl.core.inner_loop import adapt_batch

    batched = adapt_batch(net, params, ce, (sx, sy), 1, 0.4)
    out = batched_forward(net, batched, qx)
    loss_v = torch.nn.functional.cross_entropy(out.flatten(0, 1), qy.flatten(), reduction="sum") / 4
    loss_l = sum(ce(forward_with(net, adapt(net, params, ce, (sx[i], sy[i]), 1, 0.4)), (qx[i], qy[i])) for i in range(3))
    for gv, gl in zip(torch.autograd.grad(loss_v, list(params.values())),
                      torch.autograd.grad(loss_l, list(params.values())), strict=True):
        torch.testing.assert_close(gv, gl)


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_training_makes_adaptation_lower_the_error(meta_sgd):
    # Meta-SGD learns step sizes for the one trained step; more steps with them overshoot.
    steps = 1 if meta_sgd else 5
    cfg = MAMLConfig(iterations=100, meta_batch=8, meta_lr=3e-3, eval_inner_steps=steps, train_queries=10,
                     meta_sgd=meta_sgd)
    family = metarl.make_family("metarl/Sinusoid-v0", queries=50)  # evaluation queries
    agent = MAML(cfg, family, seed=0)
    tasks = family.sample_tasks(100, "test", task_rng(0, "test"))
    before = agent.evaluate(tasks, seed=1)
    while agent.progress() < 1:
        stats = agent.train_iteration()
    assert stats.env_steps == 0 and {"train/loss", "train/pre_adaptation_loss"} <= set(stats.scalars)
    assert stats.curve.x == [0, 1] and stats.curve.curve_name == "query_mse"
    after = agent.evaluate(tasks, seed=1)
    assert after.x == list(range(steps + 1)) and after.score_name == f"query_mse_step_{steps}"
    pre, post = after.curve.mean(0)[0], after.scores.mean()
    assert post < 0.95 * pre, (pre, post)  # adapting from the meta-learned init pays
    assert post < before.scores.mean()
    if meta_sgd:
        assert "train/step_size_mean" in stats.scalars


def test_resume_continues_exactly(sinusoid):
    cfg = MAMLConfig(iterations=10, meta_batch=4, meta_sgd=True, lr_decay=True)
    straight = MAML(cfg, sinusoid, seed=3)
    for _ in range(4):
        straight.train_iteration()
    first = MAML(cfg, sinusoid, seed=3)
    for _ in range(2):
        first.train_iteration()
    state = first.state_dict()
    resumed = MAML(cfg, sinusoid, seed=3)
    resumed.load_state_dict(state)
    for _ in range(2):
        resumed.train_iteration()
    for a, b in zip(straight.state_dict()["model"].values(), resumed.state_dict()["model"].values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(straight.step_sizes.flat(), resumed.step_sizes.flat(), rtol=0, atol=0)


def test_config_errors_and_regression_refuses_classify(sinusoid):
    with pytest.raises(ValueError, match="--per-step-lr"):
        MAMLConfig(per_step_lr=True)
    with pytest.raises(ValueError, match="--meta-batch must be > 0"):
        MAMLConfig(meta_batch=0)
    with pytest.raises(TypeError, match="classification"):
        MAML(MAMLConfig(), sinusoid).classify(_episode())
    with pytest.raises(ValueError, match="supervised"):
        MAML(MAMLConfig(), metarl.make_family("metarl/Bandit-v0"))


def test_cli_train_then_evaluate(tmp_path, capsys):
    argv = ["--algo", "maml", "--env", "metarl/Sinusoid-v0", "--iterations", "6", "--meta-batch", "4", "--shots", "5",
            "--eval-every", "3", "--eval-tasks", "20", "--eval-inner-steps", "3", "--meta-sgd",
            "--amplitude-range", "1.0", "2.0", "--no-progress", "--logdir", str(tmp_path)]
    assert train.main(argv) == 0
    (run,) = list(tmp_path.iterdir())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"]["amplitude_range"] == [1.0, 2.0] and cfg["family"]["shots"] == 5
    assert cfg["agent"]["meta_sgd"] is True
    tags = read_scalars(run)
    assert {"adaptation/query_mse_step_0", "adaptation/query_mse_step_1", "train/loss", "train/step_size_std",
            "eval/query_mse_step_3", "eval/score"} <= set(tags)
    out = tmp_path / "ood.json"
    assert evaluate.main([str(run), "--split", "ood", "--num-tasks", "30", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    # --split ood runs the adaptation protocol: MAML is scored after its 3 steps at each shot count.
    assert report["algo"] == "maml" and report["score_name"] == "query_mse_shots_5" and report["num_tasks"] == 30
    assert [p["x"] for p in report["curve"]] == [1, 2, 5, 10]
    assert [m["name"] for m in report["methods"]] == ["maml (meta-sgd)", "scratch"]
    assert "query_mse_shots_5" in capsys.readouterr().out
    assert evaluate.main([str(run), "--split", "test", "--num-tasks", "30", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["score_name"] == "query_mse_step_3" and [p["x"] for p in report["curve"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_anil_adapts_only_the_head_and_meta_learns_the_body(sinusoid, meta_sgd):
    agent = MAML(MAMLConfig(anil=True, meta_sgd=meta_sgd, inner_lr=0.1, meta_batch=4), sinusoid, seed=0)
    assert agent.adapt_names == ["5.weight", "5.bias"]  # the MLP's output layer: Flatten, 2 x (Linear, ReLU), Linear
    episode = agent.train_episodes()
    trajectory = agent.adapt_episode(episode, 1, first_order=False)
    start, adapted = trajectory[0], trajectory[1]
    for name in start:
        moved = not torch.equal(adapted[name], start[name].expand_as(adapted[name]))
        assert moved == (name in agent.adapt_names), name
    losses, _ = agent.adapted_losses(episode, 1, first_order=False)
    losses[:, -1].mean().backward()
    body = agent.model[1].weight.grad
    assert body is not None and body.abs().sum() > 0  # the body learns through the query loss
    if meta_sgd:  # step sizes only for the adapted layer
        assert sum(v.numel() for v in agent.step_sizes.values) == 41
    before = agent.evaluate(sinusoid.sample_tasks(20, "test", task_rng(0, "test")), seed=1).scores.mean()
    assert np.isfinite(before)
