"""Oracle tests of metarl/Nav2D-v0: reward, clipping, goal termination, splits, drawing."""

from __future__ import annotations

import numpy as np

import metarl
from metarl.core.seeding import task_rng
from metarl.envs.nav2d import Nav2DFamily, Nav2DTask, plot_trajectories


def test_reward_is_minus_distance_after_the_clipped_move():
    env = Nav2DFamily().make_env(Nav2DTask((0.4, -0.3)))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    obs, reward, term, trunc, _ = env.step(np.array([0.5, -0.05], dtype=np.float32))
    np.testing.assert_allclose(obs, [0.1, -0.05], rtol=1e-6)
    np.testing.assert_allclose(reward, -np.hypot(0.4 - 0.1, -0.3 + 0.05))
    assert not term and not trunc


def test_episode_terminates_within_radius_of_goal_and_truncates_at_horizon():
    env = Nav2DFamily().make_env(Nav2DTask((0.15, 0.0)))
    env.reset(seed=0)
    _, _, term, _, _ = env.step(np.array([0.1, 0.0], dtype=np.float32))
    assert not term
    _, reward, term, _, _ = env.step(np.array([0.045, 0.005], dtype=np.float32))
    assert term and -0.01 < reward <= 0.0
    env = Nav2DFamily(horizon=5).make_env(Nav2DTask((0.3, 0.3)))
    env.reset(seed=0)
    truncs = [env.step(np.zeros(2, dtype=np.float32))[3] for _ in range(5)]
    assert truncs == [False] * 4 + [True]


def test_batched_env_resets_finished_sub_envs_to_the_origin():
    family = Nav2DFamily()
    env = family.make_vec_env(2, [Nav2DTask((0.1, 0.0)), Nav2DTask((0.5, 0.5))])
    env.reset(seed=0)
    obs, _, term, _, _ = env.step(np.array([[0.1, 0.0], [0.1, 0.1]], dtype=np.float32))
    assert term.tolist() == [True, False]
    obs, reward, term, _, _ = env.step(np.array([[0.1, 0.0], [0.1, 0.1]], dtype=np.float32))
    np.testing.assert_allclose(obs, [[0.0, 0.0], [0.2, 0.2]], rtol=1e-6)
    assert reward[0] == 0.0 and not term.any()  # NEXT_STEP: the reset step has no reward


def test_splits_lie_in_the_square_and_the_ring_outside_it():
    family = Nav2DFamily()
    train = np.array([t.goal for t in family.sample_tasks(500, "train", task_rng(0, "train"))])
    ood = np.array([t.goal for t in family.sample_tasks(2000, "ood", task_rng(0, "ood"))])
    assert np.abs(train).max() <= 0.5
    linf = np.abs(ood).max(axis=1)
    assert linf.min() >= 0.5 and linf.max() <= 1.0
    # Uniform over the ring: each quadrant and the inner half-ring get their share of the area.
    assert all(abs(np.mean(np.sign(ood[:, k]) > 0) - 0.5) < 0.05 for k in range(2))
    assert abs(np.mean(linf < np.sqrt(0.625)) - 0.5) < 0.05  # half the ring's area lies inside r^2 = 0.625


def test_rgb_frame_shows_goal_and_agent_and_plot_saves(tmp_path):
    env = metarl.make_family("metarl/Nav2D-v0").make_env(Nav2DTask((0.5, 0.5)), render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([-0.1, -0.1], dtype=np.float32))
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    size, view = 128, 1.1
    col = lambda v: int((v + view) / (2 * view) * size)  # noqa: E731
    np.testing.assert_array_equal(frame[size - 1 - col(0.5), col(0.5)], (40, 160, 60))
    np.testing.assert_array_equal(frame[size - 1 - col(-0.1), col(-0.1)], (40, 80, 220))
    trajs = [np.cumsum(np.full((10, 2), 0.05 * s), axis=0) for s in (1, -1)]
    fig = plot_trajectories(trajs, goals=[(0.4, 0.4), (-0.3, -0.5)], title="t", path=str(tmp_path / "nav.png"))
    assert (tmp_path / "nav.png").stat().st_size > 1000
    assert len(fig.axes) == 1
