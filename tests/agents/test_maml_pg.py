"""MAML policy gradient: meta-gradients, TRPO's pieces, the baseline, and the CLI."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import metarl
from metarl import evaluate, train
from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig, Rollout
from metarl.core.inner_loop import params_of
from metarl.rl.trpo import fisher_vector_product, flat
from tests.helpers import exits_2, only_run

TINY = dict(meta_batch=3, trajectories=4, hidden_sizes=(5,), iterations=2, eval_batch=4)


def _agent(**kw) -> MAMLPG:
    family = metarl.make_family("metarl/Nav2D-v0", horizon=6, n=1)
    return MAMLPG(MAMLPGConfig(**{**TINY, **kw}), family, seed=0)


def _double(agent: MAMLPG, rollouts: list[Rollout]) -> None:
    agent.policy.double()
    if agent.step_sizes is not None:
        agent.step_sizes.double()
    for ro in rollouts:
        for f in dataclasses.fields(ro):
            v = getattr(ro, f.name)
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                setattr(ro, f.name, v.double())


def _sampled(agent: MAMLPG, steps: int = 1) -> tuple[list[Rollout], Rollout]:
    tasks = agent.family.sample_tasks(agent.config.meta_batch, "train", np.random.default_rng(0))
    pre, post = agent.sample_adaptation(tasks, steps, agent.config.trajectories, agent.generator,
                                        np.random.default_rng(1))
    agent.add_advantages(post)
    _double(agent, [*pre, post])
    return pre, post


def _finite_difference_grad(f, params: list[torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for p in params:
            flat_p = p.view(-1)
            for i in range(flat_p.numel()):
                old = flat_p[i].item()
                flat_p[i] = old + eps
                up = float(f())
                flat_p[i] = old - eps
                down = float(f())
                flat_p[i] = old
                out.append((up - down) / (2 * eps))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("meta_sgd", [False, True])
def test_second_order_meta_gradient_matches_finite_differences(meta_sgd):
    agent = _agent(meta_sgd=meta_sgd)
    pre, post = _sampled(agent)
    # Move theta away from the sampling point so the importance ratios (and their
    # second-order terms) are not all trivially 1.
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    params = agent.meta_parameters()
    loss, _ = agent.objective(pre, post)
    analytic = flat(torch.autograd.grad(loss, params))
    numeric = _finite_difference_grad(lambda: agent.objective(pre, post)[0], params)
    assert analytic.abs().max() > 1e-4
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kw", [dict(), dict(meta_sgd=True, inner_steps=2, per_step_lr=True), dict(first_order=True)])
def test_gauss_newton_fvp_equals_the_double_backward_hessian_of_the_kl(kw):
    agent = _agent(**kw)
    pre, post = _sampled(agent, steps=agent.config.inner_steps)
    params = agent.meta_parameters()
    _, kl = agent.objective(pre, post)
    exact = fisher_vector_product(kl, params, damping=0.0)
    fast = agent.gauss_newton_fvp(pre, post, damping=0.0)
    v = torch.randn(sum(p.numel() for p in params), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # equal up to the float32 rounding of the stored sampling distribution (KL gradient ~1e-8)
    torch.testing.assert_close(fast(v), exact(v), rtol=1e-5, atol=1e-7)
    assert fast(v).abs().max() > 1e-6


def test_first_order_drops_exactly_the_second_order_term():
    agent = _agent(first_order=True)
    pre, post = _sampled(agent)
    theta = params_of(agent.policy)
    loss, _ = agent.objective(pre, post)
    fo = torch.autograd.grad(loss, list(theta.values()))
    # First order: d theta'/d theta = I, so the meta-gradient is the sum over tasks of the
    # post-adaptation gradient at each task's adapted parameters, taken as leaves.
    adapted = {k: v.detach().requires_grad_() for k, v in agent.adapt(theta, pre[0], 0, False, True).items()}
    d = torch.func.vmap(lambda p, o: torch.func.functional_call(agent.policy, p, (o,)))(adapted, post.obs)
    logp = agent.dist.log_prob(d, post.actions)
    m = post.mask.double()
    per_task = -((torch.exp(logp - post.logp) * post.advantages * m).sum((1, 2)) / m.sum((1, 2)))
    leaf_grads = torch.autograd.grad(per_task.mean(), list(adapted.values()))
    for g_fo, g_leaf in zip(fo, leaf_grads, strict=True):
        torch.testing.assert_close(g_fo, g_leaf.sum(0))
    # Second order differs from it by exactly the Hessian term, which is not zero here.
    so_agent = _agent(first_order=False)
    so_agent.policy.double().load_state_dict(agent.policy.state_dict())
    so_loss, _ = so_agent.objective(pre, post)
    so = torch.autograd.grad(so_loss, list(params_of(so_agent.policy).values()))
    assert max(float((a - b).abs().max()) for a, b in zip(so, fo, strict=True)) > 1e-6


def test_train_iteration_logs_the_adaptation_curve_and_stays_in_the_trust_region():
    agent = _agent(meta_sgd=True, inner_steps=2, per_step_lr=True)
    stats = agent.train_iteration()
    assert stats.curve is not None and stats.curve.curve.shape == (3, 3)
    assert stats.scalars["train/kl"] <= 0.01 + 1e-6
    for key in ("train/outer_loss", "train/inner_loss", "train/step_size_mean", "train/step_size_std",
                "time/update_seconds"):
        assert math.isfinite(stats.scalars[key])
    assert stats.env_steps == 3 * 3 * 4 * 6


def test_evaluation_is_reproducible_and_has_the_requested_steps():
    agent = _agent(outer="ppo")
    agent.train_iteration()
    tasks = agent.family.sample_tasks(6, "test", np.random.default_rng(5))
    agent.eval_inner_steps = 2
    a, b = agent.evaluate(tasks, seed=3), agent.evaluate(tasks, seed=3)
    assert a.curve.shape == (6, 3) and a.x == [0, 1, 2]
    np.testing.assert_array_equal(a.curve, b.curve)


def test_discrete_actions_and_observations():
    family = metarl.make_family("metarl/TabularMDP-v0")
    agent = MAMLPG(MAMLPGConfig(**TINY), family, seed=0)
    stats = agent.train_iteration()
    assert stats.curve is not None and np.isfinite(stats.curve.curve).all()


def test_adaptation_improves_on_nav2d_after_meta_training():
    # The smallest real run: pre- vs post-adaptation return on held-out goals after a
    # few meta-iterations of the paper's setup, scaled down.
    family = metarl.make_family("metarl/Nav2D-v0", horizon=20, n=1)
    agent = MAMLPG(MAMLPGConfig(meta_batch=10, trajectories=10, hidden_sizes=(32, 32), iterations=15,
                                first_order=True), family, seed=0)
    for _ in range(15):
        agent.train_iteration()
    result = agent.evaluate(family.sample_tasks(40, "test", np.random.default_rng(0)), seed=0)
    before, after = result.curve[:, 0], result.curve[:, 1]
    assert (after - before).mean() > 3 * (after - before).std() / math.sqrt(len(before))


def test_cli_train_evaluate_inner_steps_and_random_init(tmp_path, capsys):
    args = ["--algo", "maml_pg", "--env", "metarl/Nav2D-v0", "--horizon", "5", "--meta-batch", "2",
            "--trajectories", "3", "--hidden-sizes", "4", "--iterations", "2", "--eval-tasks", "4",
            "--logdir", str(tmp_path), "--no-progress"]
    assert train.main(args) == 0
    run = only_run(tmp_path)
    out = tmp_path / "eval.json"
    assert evaluate.main([str(run), "--num-tasks", "5", "--inner-steps", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [p["x"] for p in report["curve"]] == [0, 1, 2] and report["init"] == "trained"
    assert evaluate.main([str(run), "--num-tasks", "5", "--inner-steps", "1", "--init", "random"]) == 0
    random_report = json.loads((run / "eval" / "test-random-init.json").read_text())
    assert random_report["init"] == "random" and len(random_report["curve"]) == 2
    exits_2(capsys, evaluate.main, [str(run), "--inner-steps", "-1"], "--inner-steps must lie in [0, 1000], got -1")
    exits_2(capsys, train.main, [*args, "--meta-sgd", "--inner-steps", "0"], "--meta-sgd learns inner step sizes")
