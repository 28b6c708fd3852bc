"""MuJoCo locomotion families: rewards against Gymnasium's own envs, per-env tasks, splits.

The oracles are Gymnasium's unmodified MuJoCo envs stepped in lockstep (same seed, same
actions): the families keep Gymnasium's physics, so the trajectories agree exactly and each
task reward must equal its documented formula evaluated on the reference env's ``info``.
"""

from __future__ import annotations

import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

pytest.importorskip("mujoco")

import metarl  # noqa: E402
from metarl.core.seeding import task_rng  # noqa: E402
from metarl.envs.mujoco_locomotion import (  # noqa: E402
    CHEETAH_BODIES,
    CHEETAH_JOINTS,
    AntDirTask,
    HalfCheetahDirTask,
    HalfCheetahDynamicsTask,
    HalfCheetahVelTask,
)

STEPS = 12


def _lockstep(family_id: str, task, reference_id: str, seed: int = 3, **family_kwargs):
    """Step the family's env and Gymnasium's reference env with the same seed and actions."""
    family = metarl.make_family(family_id, **family_kwargs)
    env = family.make_env(task)
    ref = gym.make(reference_id, reset_noise_scale=family.reset_noise_scale).unwrapped
    obs, _ = env.reset(seed=seed)
    ref_obs, _ = ref.reset(seed=seed)
    np.testing.assert_array_equal(obs, ref_obs)
    env.action_space.seed(seed)
    rows = []
    for _ in range(STEPS):
        action = env.action_space.sample()
        x_before = ref.data.qpos[0].copy()
        obs, reward, term, trunc, info = env.step(action)
        ref_obs, ref_reward, ref_term, _, ref_info = ref.step(action)
        np.testing.assert_array_equal(obs, ref_obs)
        assert term == ref_term
        rows.append((action.astype(np.float64), reward, ref_reward, ref_info, (ref.data.qpos[0] - x_before) / ref.dt))
    return rows


def test_half_cheetah_vel_reward_is_minus_speed_error_minus_control_cost():
    task = HalfCheetahVelTask(1.3)
    for action, reward, _, info, x_velocity in _lockstep("metarl/HalfCheetahVel-v0", task, "HalfCheetah-v5"):
        assert info["x_velocity"] == pytest.approx(x_velocity)
        assert reward == pytest.approx(-abs(x_velocity - 1.3) - 0.05 * np.sum(action**2), abs=1e-12)


@pytest.mark.parametrize("direction", [1, -1])
def test_half_cheetah_dir_reward_is_signed_velocity_minus_control_cost(direction):
    task = HalfCheetahDirTask(direction, "test")
    for action, reward, _, _, x_velocity in _lockstep("metarl/HalfCheetahDir-v0", task, "HalfCheetah-v5"):
        assert reward == pytest.approx(direction * x_velocity - 0.05 * np.sum(action**2), abs=1e-12)


def test_half_cheetah_dir_forward_with_gymnasiums_weight_is_gymnasiums_reward():
    rows = _lockstep("metarl/HalfCheetahDir-v0", HalfCheetahDirTask(1), "HalfCheetah-v5", ctrl_cost_weight=0.1)
    for _, reward, ref_reward, _, _ in rows:
        assert reward == pytest.approx(ref_reward, abs=1e-6)  # Gymnasium squares the float32 action


def test_ant_dir_reward_is_velocity_along_direction_minus_costs_plus_healthy():
    angle = 2.0
    for action, reward, _, info, _ in _lockstep("metarl/AntDir-v0", AntDirTask(angle), "Ant-v5"):
        forward = math.cos(angle) * info["x_velocity"] + math.sin(angle) * info["y_velocity"]
        assert info["reward_ctrl"] == pytest.approx(-0.5 * np.sum(action**2), abs=1e-6)
        assert reward == pytest.approx(forward + info["reward_ctrl"] + info["reward_contact"] + 1.0, abs=1e-12)


def test_ant_dir_along_x_is_gymnasiums_ant_reward():
    for _, reward, ref_reward, _, _ in _lockstep("metarl/AntDir-v0", AntDirTask(0.0), "Ant-v5"):
        assert reward == pytest.approx(ref_reward, abs=1e-9)


def test_half_cheetah_dynamics_with_unit_scales_is_gymnasiums_half_cheetah():
    unit = HalfCheetahDynamicsTask((1.0,) * len(CHEETAH_BODIES), (1.0,) * len(CHEETAH_JOINTS))
    for action, reward, ref_reward, _, x_velocity in _lockstep("metarl/HalfCheetahDynamics-v0", unit, "HalfCheetah-v5"):
        assert reward == ref_reward
        assert reward == pytest.approx(x_velocity - 0.1 * np.sum(action**2), abs=1e-6)  # float32 action


def test_half_cheetah_dynamics_scales_the_model_at_reset_and_changes_the_motion():
    family = metarl.make_family("metarl/HalfCheetahDynamics-v0")
    plain = gym.make("HalfCheetah-v5").unwrapped.model
    task = family.sample_tasks(1, "train")[0]
    env = family.make_env(task)
    env.reset(seed=0)
    model = env.inner.model
    for name, scale in zip(CHEETAH_BODIES, task.mass_scales, strict=True):
        assert model.body(name).mass[0] == pytest.approx(plain.body(name).mass[0] * scale)
        np.testing.assert_allclose(model.body(name).inertia, plain.body(name).inertia * scale)
    for name, scale in zip(CHEETAH_JOINTS, task.damping_scales, strict=True):
        assert model.joint(name).damping[0] == pytest.approx(plain.joint(name).damping[0] * scale)
    # Same seed and actions, other physics: the motion differs; and the info reward is Gymnasium's.
    other = family.sample_tasks(1, "ood")[0]
    actions = [env.action_space.sample() for _ in range(STEPS)]
    finals = []
    for t in (task, other):
        env.reset(seed=0, options={"task": t})
        for a in actions:
            obs, reward, *_, info = env.step(a)
            assert reward == info["reward_gymnasium"]
        finals.append(obs)
    assert not np.allclose(*finals)


def test_splits_are_as_documented():
    rng = {s: task_rng(0, s) for s in ("train", "test", "ood")}
    vel = metarl.make_family("metarl/HalfCheetahVel-v0")
    assert all(0 <= t.velocity <= 2 for s in ("train", "test") for t in vel.sample_tasks(200, s, rng[s]))
    assert all(2 <= t.velocity <= 3 for t in vel.sample_tasks(200, "ood", rng["ood"]))

    dirs = metarl.make_family("metarl/HalfCheetahDir-v0")
    for split in ("train", "test", "ood"):
        tasks = dirs.sample_tasks(50, split, task_rng(1, split))
        assert {t.direction for t in tasks} == {-1, 1} and {t.split for t in tasks} == {split}

    ant = metarl.make_family("metarl/AntDir-v0")
    sector = math.radians(45)
    assert all(sector <= t.angle < 2 * math.pi for t in ant.sample_tasks(300, "train", task_rng(2, "train")))
    assert all(0 <= t.angle < sector for t in ant.sample_tasks(300, "ood", task_rng(2, "ood")))
    full = metarl.make_family("metarl/AntDir-v0", held_out_degrees=0.0)
    assert min(t.angle for t in full.sample_tasks(300, "train", task_rng(2, "train"))) < sector
    with pytest.raises(ValueError, match="no ood"):
        full.sample_tasks(1, "ood")

    dyn = metarl.make_family("metarl/HalfCheetahDynamics-v0")
    scales = np.array([(*t.mass_scales, *t.damping_scales) for t in dyn.sample_tasks(100, "train")])
    assert scales.shape == (100, 13) and scales.min() >= 0.5 and scales.max() <= 1.5
    ood = np.array([(*t.mass_scales, *t.damping_scales) for t in dyn.sample_tasks(100, "ood")])
    assert ((ood >= 0.25) & (ood < 0.5) | (ood > 1.5) & (ood <= 2.0)).all()
    assert (ood < 0.5).mean() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("family_id", ["metarl/HalfCheetahVel-v0", "metarl/HalfCheetahDynamics-v0"])
def test_per_env_tasks_reach_the_sub_envs(family_id):
    """Each sub-env of the batched env behaves like a single env set to that sub-env's task."""
    family = metarl.make_family(family_id)
    tasks = family.sample_tasks(3, "test")
    env = gym.make_vec(family_id, num_envs=3)
    env.reset(seed=7, options={"tasks": tasks})
    assert env.unwrapped.tasks == tasks
    assert [sub.task for sub in env.unwrapped.envs] == tasks
    actions = [env.action_space.sample() for _ in range(STEPS)]
    rewards = np.array([env.step(a)[1] for a in actions])
    for i, task in enumerate(tasks):
        single = family.make_env(task)
        single.reset(seed=7 + i)  # SyncVectorEnv seeds sub-env i with seed + i
        np.testing.assert_array_equal(rewards[:, i], [single.step(a[i])[1] for a in actions])
    # set_tasks switches them; autoreset keeps them.
    new = family.sample_tasks(3, "ood")
    env.unwrapped.set_tasks(new)
    assert env.unwrapped.tasks == new
    with pytest.raises(ValueError, match="3"):
        env.unwrapped.set_tasks(new[:1])


def test_episodes_truncate_at_horizon_and_autoreset_keeps_tasks():
    family = metarl.make_family("metarl/HalfCheetahVel-v0", horizon=5)
    tasks = family.sample_tasks(2, "train")
    env = family.make_vec_env(2, tasks)
    env.reset(seed=0)
    truncs = [env.step(env.action_space.sample())[3] for _ in range(7)]
    assert [bool(t.all()) for t in truncs] == [False] * 4 + [True, False, False]
    assert env.tasks == tasks


def test_noise_free_families_are_deterministic_and_match_sync_vector_env_exactly():
    family = metarl.make_family("metarl/HalfCheetahVel-v0", reset_noise_scale=0.0, horizon=10)
    tasks = family.deterministic_tasks(3, np.random.default_rng(0))
    assert len(tasks) == 3
    assert metarl.make_family("metarl/HalfCheetahVel-v0").deterministic_tasks(3, np.random.default_rng(0)) == []
    actions = [np.random.default_rng(i).uniform(-1, 1, (3, 6)) for i in range(25)]
    runs = []
    for env in (
        family.make_vec_env(3, tasks),
        SyncVectorEnv([lambda t=t: family.make_env(t) for t in tasks], autoreset_mode=AutoresetMode.NEXT_STEP),
    ):
        obs, _ = env.reset(seed=None)  # no seed: without noise the start is the same anyway
        runs.append([obs] + [env.step(a)[:4] for a in actions])
    for x, y in zip(*runs, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.slow
def test_without_mujoco_the_module_imports_and_its_families_are_unlisted_and_say_what_to_install():
    code = (
        "import sys; sys.modules['mujoco'] = None\n"
        "import metarl, metarl.envs.mujoco_locomotion as m\n"
        "from metarl.core.registry import MissingDependencyError\n"
        "assert not m.MUJOCO_AVAILABLE\n"
        "ours = ('Cheetah', 'Ant', 'ML1', 'ML10')\n"
        "assert not [f for f in metarl.list_families() if any(k in f for k in ours)], metarl.list_families()\n"
        "try:\n"
        "    metarl.make_family('metarl/HalfCheetahVel-v0')\n"
        "except MissingDependencyError as exc:\n"
        "    assert 'pip install \"metarl[mujoco]\"' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('made a MuJoCo family without MuJoCo')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
