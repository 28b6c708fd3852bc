"""RL²: the hidden state's life cycle, consistency of rollout and update, and learning."""

import numpy as np
import pytest
import torch

import metarl
from metarl.agents.rl2 import RL2, RL2Config
from metarl.core.agent import cosine_decay
from metarl.rl.rollout import run_trials


@pytest.fixture
def agent():
    torch.manual_seed(0)
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=6)
    return RL2(RL2Config(num_trials=16, total_env_steps=10_000), family, seed=0)


def test_hidden_state_persists_across_episodes_and_resets_at_trial_start(agent):
    policy = agent.trial_policy(0)
    obs = np.zeros((2, 1), np.float32)
    policy.begin_trial(2)
    policy.act(obs)
    first = policy.last
    fresh_logits = agent.net(policy.x[None] * 0)[0]  # zero input, zero state
    for _ in range(4):  # four one-pull episodes: done=1 after each, different rewards per env
        policy.observe(np.array([0, 0]), np.array([1.0, 0.0]), np.array([True, True]), np.array([True, True]), obs)
        policy.act(obs)
    h = policy.state
    assert h.abs().sum() > 0, "the hidden state is not reset at episode ends"
    assert not torch.allclose(h[0, 0], h[0, 1]), "different histories must give different states"
    policy.begin_trial(2)
    policy.act(obs)
    torch.testing.assert_close(first["values"], policy.last["values"])  # same value as at the first trial's start
    assert policy.state is not None
    with torch.no_grad():
        torch.testing.assert_close(agent.net(torch.zeros(1, 2, agent.net.input_dim))[0], fresh_logits)


@pytest.mark.parametrize("cell", ["gru", "lstm", "transformer"])
def test_update_recomputes_exactly_what_the_rollout_computed(cell):
    """Whole-trial BPTT (the transformer: one causal forward) from a zero state reproduces the
    step-by-step rollout (the transformer's: with its KV cache): the state was carried across
    every episode end of the trial and reset only at its start."""
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=6)
    agent = RL2(RL2Config(num_trials=16, total_env_steps=10_000, cell=cell), family, seed=0)
    batch = agent._collect().records
    assert batch["x"].shape[0] == 6  # six one-pull episodes in one trial
    with torch.no_grad():
        head, _, _ = agent.net(batch["x"])
        logp = agent.net.dist.log_prob(head, batch["actions"])
    torch.testing.assert_close(logp, batch["logp"], rtol=1e-5, atol=1e-5)
    assert batch["x"][1:, :, -1].eq(1).all(), "the done flag of each finished episode is an input"


def test_task_critic_sees_each_trials_task_and_the_policy_never_does():
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=6)
    agent = RL2(RL2Config(num_trials=16, total_env_steps=10_000, value_task_input=True), family, seed=0)
    batch = agent._collect().records
    probs = torch.tensor([t.probs for t in agent.env.tasks], dtype=torch.float32)
    torch.testing.assert_close(batch["task"], probs[None])  # [1, trials, 3]: once per trial, not per step
    elapsed = (torch.arange(6, dtype=torch.float32) / 6).view(6, 1, 1)
    with torch.no_grad():
        head, values, _ = agent.net(batch["x"], None, elapsed, batch["task"])
        other_head, other_values, _ = agent.net(batch["x"], None, elapsed, 1 - batch["task"])
    torch.testing.assert_close(values, batch["values"], rtol=1e-5, atol=1e-5)  # the update's values are the rollout's
    torch.testing.assert_close(head, other_head, rtol=0, atol=0)
    assert not torch.allclose(values, other_values)
    stats = agent.update(agent._collect())
    assert np.isfinite(stats.scalars["train/value_loss"])


def test_task_critic_refuses_tasks_without_numeric_parameters(monkeypatch):
    import dataclasses

    from metarl.core.errors import UsageError
    from metarl.envs.bandit import BanditTask

    @dataclasses.dataclass(frozen=True)
    class Labelled(BanditTask):
        label: str = "left"

    family = metarl.make_family("metarl/Bandit-v0", k=2, n=4)
    monkeypatch.setattr(type(family), "default_task", lambda self: Labelled((0.5, 0.5)))
    with pytest.raises(UsageError, match="--value-task-input needs numeric task parameters.*'left'"):
        RL2(RL2Config(num_trials=4, total_env_steps=32, value_task_input=True), family, seed=0)


@pytest.mark.parametrize("cell", ["lstm", "transformer"])
def test_other_cells_and_continuous_heads_run(cell):
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=4)
    agent = RL2(RL2Config(num_trials=4, total_env_steps=32, cell=cell, hidden_size=8), family, seed=1)
    stats = agent.train_iteration()
    assert stats.env_steps == 16 and np.isfinite(stats.scalars["train/policy_loss"])
    nav = metarl.make_family("metarl/Nav2D-v0", horizon=5)
    agent = RL2(RL2Config(num_trials=2, total_env_steps=10, cell=cell, hidden_size=8, minibatches=1), nav, seed=1)
    assert np.isfinite(agent.train_iteration().scalars["train/value_loss"])
    from metarl.agents.rl2 import RL2Net

    net = RL2Net(obs_dim=2, act_dim=2, discrete=False, hidden=8, cell="gru")
    head, value, _ = net(torch.zeros(1, 3, net.input_dim))
    assert head.shape == (1, 3, 4) and value.shape == (1, 3)  # [mean, log_std] of a 2-d Gaussian
    action, logp = net.dist.sample(head[0])
    assert action.shape == (3, 2)
    torch.testing.assert_close(net.dist.log_prob(head[0], action), logp)


def test_same_seed_same_training(agent):
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=6)
    other = RL2(RL2Config(num_trials=16, total_env_steps=10_000), family, seed=0)
    for a in (agent, other):
        a.train_iteration()
        a.train_iteration()
    for p, q in zip(agent.net.parameters(), other.net.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_cosine_decay_oracle():
    assert [cosine_decay(p) for p in (-1.0, 0.0, 0.5, 1.0, 2.0)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    assert cosine_decay(0.25) == pytest.approx((1 + 2**-0.5) / 2)


def test_lr_and_entropy_decay_follow_the_step_budget():
    """Each update uses the schedule's value at the steps done before it: iteration 2 of 4 (6 steps
    × 16 trials each, 384 in all) runs at half a cosine's factor for progress 1/4."""
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=6)
    cfg = RL2Config(num_trials=16, total_env_steps=384, lr=1e-2, entropy_coef=0.1, lr_decay=True, entropy_decay=True)
    agent = RL2(cfg, family, seed=0)
    first = agent.train_iteration().scalars
    assert first["train/lr"] == pytest.approx(1e-2) and agent.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)
    second = agent.train_iteration().scalars
    factor = cosine_decay(0.25)
    assert second["train/lr"] == pytest.approx(1e-2 * factor)
    assert second["train/entropy_coef"] == pytest.approx(0.1 * factor)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * factor)
    constant = RL2(RL2Config(num_trials=16, total_env_steps=384, lr=1e-2), family, seed=0)
    constant.train_iteration()
    constant.train_iteration()
    assert constant.optimizer.param_groups[0]["lr"] == 1e-2  # no schedule: Adam's rate is untouched


@pytest.mark.slow
def test_learns_to_beat_random_on_two_armed_bandits():
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=10)
    agent = RL2(RL2Config(num_trials=512, total_env_steps=10**9, lr=3e-3, hidden_size=32), family, seed=0)
    for _ in range(40):
        agent.train_iteration()
    tasks = family.sample_tasks(2000, "test")
    rl2 = run_trials(agent.trial_policy(0), family, tasks, seed=1).returns.sum(1)
    from metarl.agents.random_policy import RandomAgent, RandomConfig

    rand = RandomAgent(RandomConfig(), family, seed=0).evaluate(tasks, seed=1).scores
    # random scores 5.0 in expectation; the Bayes-optimal policy about 6.2
    assert rl2.mean() - rand.mean() > 0.5, (rl2.mean(), rand.mean())


def test_transformer_learns_to_beat_random_on_two_armed_bandits():
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=10)
    config = RL2Config(num_trials=256, total_env_steps=10**9, hidden_size=16, cell="transformer", transformer_heads=2)
    agent = RL2(config, family, seed=0)
    for _ in range(30):
        agent.train_iteration()
    tasks = family.sample_tasks(1000, "test")
    rl2 = agent.evaluate(tasks, seed=1).scores
    from metarl.agents.random_policy import RandomAgent, RandomConfig

    rand = RandomAgent(RandomConfig(), family, seed=0).evaluate(tasks, seed=1).scores
    # random scores 5.0 in expectation, the Bayes-optimal policy about 6.2; this run about 5.8
    assert rl2.mean() - rand.mean() > 0.5, (rl2.mean(), rand.mean())


def test_transformer_checkpoint_round_trip(tmp_path):
    """A transformer run's checkpoint restores the agent exactly: the restored agent's next
    iteration equals the original's, weights and optimiser alike."""
    from metarl import train
    from metarl.core.errors import CheckpointError
    from metarl.run.checkpoint import load_run, restore_agent
    from tests.helpers import TINY_RL2, only_run

    assert train.main([*TINY_RL2, "--cell", "transformer", "--hidden-size", "8", "--transformer-heads", "2",
                       "--logdir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    spec = load_run(run)
    assert spec.agent_config.cell == "transformer" and spec.agent_config.transformer_heads == 2
    path = run / "checkpoints" / "latest.pt"
    restored = [spec.build_agent() for _ in range(2)]
    for agent in restored:  # a load each: Adam's load_state_dict keeps the loaded tensors, not copies
        restore_agent(agent, torch.load(path, weights_only=True), path)
    saved = torch.load(path, weights_only=True)
    assert restored[0].env_steps == 160
    for key, value in saved["agent"]["net"].items():
        torch.testing.assert_close(restored[0].net.state_dict()[key], value, rtol=0, atol=0)
    a, b = (agent.train_iteration().scalars for agent in restored)
    assert a == b  # same optimiser state and random streams: the same next iteration
    for p, q in zip(restored[0].net.parameters(), restored[1].net.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    gru = RL2(RL2Config(num_trials=8, total_env_steps=160, hidden_size=8), spec.family, seed=0)
    with pytest.raises(CheckpointError, match="does not fit"):
        restore_agent(gru, saved, path)  # a GRU cannot take a transformer's weights


@pytest.mark.parametrize(
    "family_id",
    # Meta-World envs take seconds each to build: their runs are marked slow.
    [pytest.param(f, marks=pytest.mark.slow) if "/ML" in f else f for f in metarl.list_families(kind="rl")],
)
def test_one_iteration_on_every_rl_family(family_id):
    """RL² runs on every registered RL family: discrete and continuous, any observation."""
    family = metarl.make_family(family_id)
    agent = RL2(RL2Config(num_trials=2, total_env_steps=10**6, hidden_size=8, minibatches=1, trial_episodes=1), family)
    stats = agent.train_iteration()
    assert 0 < stats.env_steps <= 2 * family.max_episode_steps
    assert np.isfinite(stats.scalars["train/policy_loss"]) and np.isfinite(stats.scalars["train/value_loss"])
    result = agent.evaluate(family.sample_tasks(2, "test"), seed=0)
    assert result.curve.shape == (2, 1)
