"""The SB3 VecEnv adapter: SB3's step semantics checked against hand-computed trajectories,
per-sub-env tasks, seeding, SB3's attribute calls and wrappers, and SB3 learning through it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

import metarl
from metarl.envs.bandit import BanditTask
from metarl.envs.nav2d import Nav2DTask
from metarl.rl.rollout import run_trials
from metarl.rl.sb3 import SB3VecEnv
from metarl.rl.wrappers import TaskObservationVecEnv

ARRAY_FAMILIES = ["metarl/Bandit-v0", "metarl/Nav2D-v0", "metarl/Pendulum-v0", "metarl/CartPole-v0",
                  "metarl/TabularMDP-v0", "metarl/HiddenGoalGrid-v0"]


def test_sb3_steps_match_a_hand_computed_nav2d_walk_over_several_autoresets():
    # Both sub-envs move +0.1 in x each step from the origin; episodes last at most 3 steps.
    # Sub-env 0's goal (0.2, 0) is reached at the second step (terminated); sub-env 1's goal
    # (-0.4, 0.3) never is (truncated at the third). Six steps: two episodes of each, with resets.
    family = metarl.make_family("metarl/Nav2D-v0", horizon=3)
    goals = [(0.2, 0.0), (-0.4, 0.3)]
    env = SB3VecEnv(family, num_envs=2, tasks=[Nav2DTask(g) for g in goals], seed=0)
    obs = env.reset()
    np.testing.assert_array_equal(obs, np.zeros((2, 2), np.float32))
    position = [0.0, 0.0]
    steps_in_episode = [0, 0]
    action = np.array([[0.1, 0.0], [0.1, 0.0]], np.float32)
    ends = {0: [], 1: []}
    for t in range(6):
        obs, rewards, dones, infos = env.step(action)
        for i, (gx, gy) in enumerate(goals):
            position[i] += 0.1
            steps_in_episode[i] += 1
            distance = np.hypot(position[i] - gx, gy)
            assert rewards[i] == pytest.approx(-distance, abs=1e-6)
            reached, timed_out = distance < 0.01, steps_in_episode[i] == 3
            assert dones[i] == (reached or timed_out), (t, i)
            if dones[i]:
                np.testing.assert_allclose(infos[i]["terminal_observation"], [position[i], 0.0], atol=1e-6)
                assert infos[i]["TimeLimit.truncated"] == (timed_out and not reached)
                np.testing.assert_array_equal(obs[i], [0.0, 0.0])  # reset in the same step
                ends[i].append((t, bool(infos[i]["TimeLimit.truncated"])))
                position[i], steps_in_episode[i] = 0.0, 0
            else:
                assert "terminal_observation" not in infos[i]
                np.testing.assert_allclose(obs[i], [position[i], 0.0], atol=1e-6)
    assert ends == {0: [(1, False), (3, False), (5, False)], 1: [(2, True), (5, True)]}


def test_trial_mode_reports_rl2_inputs_and_ends_the_episode_after_k_episodes():
    # Arm 1 always pays, arm 0 never: pulls alternate 1, 0, 1, ... over trials of 3 pulls.
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=3)
    env = SB3VecEnv(family, num_envs=1, tasks=[BanditTask((0.0, 1.0))], trial_episodes=3, seed=0)
    obs = env.reset()
    np.testing.assert_array_equal(obs, [[0.0, 0, 0, 0, 0]])  # [obs, one-hot previous action, reward, done]
    for t in range(7):
        arm = (t + 1) % 2
        obs, rewards, dones, infos = env.step(np.array([arm]))
        assert rewards[0] == arm
        expected = [0.0, float(arm == 0), float(arm == 1), float(arm), 1.0]
        if t % 3 == 2:  # the third pull ends the trial: reset, the trial's last inputs kept aside
            assert dones[0] and not infos[0]["TimeLimit.truncated"]
            np.testing.assert_array_equal(infos[0]["terminal_observation"], expected)
            np.testing.assert_array_equal(obs[0], [0.0, 0, 0, 0, 0])
        else:
            assert not dones[0]
            np.testing.assert_array_equal(obs[0], expected)


def test_each_reset_of_a_sub_env_draws_its_task_unless_it_is_fixed():
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=5)
    calls = []

    def sampler(n, rng):
        calls.append(n)
        return [BanditTask((float(p), 0.5)) for p in rng.uniform(size=n)]

    env = SB3VecEnv(family, num_envs=3, task_sampler=sampler, seed=0)
    env.reset()
    first = env.get_attr("task")
    env.set_attr("task", BanditTask((0.25, 0.75)), indices=[1])
    env.step(np.array([0, 0, 0]))  # every bandit episode is one pull: all three reset
    tasks = env.get_attr("task")
    assert tasks[1] == BanditTask((0.25, 0.75))
    assert tasks[0] != first[0] and tasks[2] != first[2]
    env.step(np.array([0, 0, 0]))
    assert env.get_attr("task", indices=1) == [BanditTask((0.25, 0.75))]
    assert calls[-2:] == [2, 2]  # one draw per step for the two sub-envs that draw
    env.env_method("set_task", BanditTask((0.5, 0.5)), indices=[0])
    env.step(np.array([0, 0, 0]))
    assert env.get_attr("task", indices=[0, 1]) == [BanditTask((0.5, 0.5)), BanditTask((0.25, 0.75))]
    assert env.env_is_wrapped(gym.Wrapper) == [False] * 3


def test_seeds_fix_tasks_and_outcomes_and_sb3_seed_reseeds_at_the_next_reset():
    def rollout(env):
        out = [env.reset()]
        for _ in range(5):
            out.append(env.step(np.zeros(4, dtype=np.int64))[1])
        return np.concatenate([np.ravel(o) for o in out]), [t.probs for t in env.get_attr("task")]

    a = rollout(SB3VecEnv("metarl/Bandit-v0", num_envs=4, seed=3))
    b = rollout(SB3VecEnv("metarl/Bandit-v0", num_envs=4, seed=3))
    c = SB3VecEnv("metarl/Bandit-v0", num_envs=4, seed=5)
    assert c.seed(3) == [3, 4, 5, 6]
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] == rollout(c)[1]
    assert rollout(SB3VecEnv("metarl/Bandit-v0", num_envs=4, seed=4))[1] != a[1]
    held = c.task_rng
    c.seed(3)
    assert rollout(c)[1] == a[1] and c.task_rng is held  # reseeded in place


def test_oracle_observations_carry_the_task_in_training_and_in_trials():
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=4)
    tasks = [BanditTask((0.1, 0.2, 0.3)), BanditTask((0.9, 0.8, 0.7))]
    env = SB3VecEnv(family, num_envs=2, tasks=tasks, oracle=True, seed=0)
    obs = env.reset()
    np.testing.assert_allclose(obs, [[0.0, 0.1, 0.2, 0.3], [0.0, 0.9, 0.8, 0.7]], atol=1e-7)
    obs, *_ = env.step(np.array([0, 1]))
    np.testing.assert_allclose(obs[:, 1:], [[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]], atol=1e-7)

    seen = []

    class Recorder:
        def begin_trial(self, num_envs):
            pass

        def act(self, obs):
            seen.append(obs.copy())
            return np.zeros(len(obs), dtype=np.int64)

        def observe(self, *args):
            pass

    run_trials(Recorder(), family, tasks, seed=0, wrap=TaskObservationVecEnv)
    assert len(seen) == 4 and all(np.allclose(o[:, 1:], [t.probs for t in tasks]) for o in seen)


@pytest.mark.parametrize("family_id", ARRAY_FAMILIES)
def test_gymnasium_single_envs_pass_sb3s_checker_and_the_adapter_takes_sb3_wrappers(family_id):
    env = gym.make(family_id)
    check_env(env.unwrapped)
    venv = SB3VecEnv(family_id, num_envs=3, seed=0)
    wrapped = VecNormalize(VecMonitor(venv))
    obs = wrapped.reset()
    assert obs.shape == (3, *venv.observation_space.shape)
    venv.action_space.seed(0)
    episodes = 0
    for _ in range(201):  # longer than any of these families' episodes
        actions = np.stack([venv.action_space.sample() for _ in range(3)])
        obs, rewards, dones, infos = wrapped.step(actions)
        assert obs.shape == (3, *venv.observation_space.shape) and np.isfinite(obs).all()
        episodes += sum("episode" in info for info in infos)
        assert all(("episode" in info) == done for info, done in zip(infos, dones, strict=True))
    assert episodes >= 3
    wrapped.close()


def test_render_returns_frames_of_families_that_draw():
    env = SB3VecEnv("metarl/Nav2D-v0", num_envs=2, seed=0, render_mode="rgb_array")
    env.reset()
    frames = env.get_images()
    assert len(frames) == 2 and frames[0].shape == (128, 128, 3)
    assert env.render().ndim == 3
    with pytest.raises(ValueError, match="render_mode"):
        SB3VecEnv("metarl/Bandit-v0", num_envs=2, render_mode="rgb_array")


def test_three_lines_of_sb3_ppo_learn_a_two_armed_bandit(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path))  # SB3's default logger would leave a folder in /tmp
    torch.set_num_threads(1)
    env = SB3VecEnv("metarl/Bandit-v0", num_envs=8, tasks=[BanditTask((0.2, 0.8))] * 8, seed=0, k=2, n=10)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=128, seed=0, device="cpu").learn(3_000)
    actions, _ = model.predict(np.zeros((200, 1), np.float32), deterministic=False)
    assert actions.mean() > 0.8  # the better arm, where a random policy pulls it half the time


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="expected 3 tasks"):
        SB3VecEnv("metarl/Bandit-v0", num_envs=3, tasks=[BanditTask((0.5,) * 5)])
    with pytest.raises(TypeError, match="family arguments"):
        SB3VecEnv(metarl.make_family("metarl/Bandit-v0"), k=3)
    with pytest.raises(ValueError, match="unknown split"):
        SB3VecEnv("metarl/Bandit-v0", split="validation")


def test_simulator_families_are_rendered_through_their_single_envs():
    pytest.importorskip("mujoco")
    with pytest.raises(ValueError, match="render one of its single envs"):
        SB3VecEnv("metarl/HalfCheetahVel-v0", num_envs=1, render_mode="rgb_array")
