"""Oracle tests of metarl/Pendulum-v0 against Gymnasium's Pendulum-v1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.core.seeding import task_rng
from metarl.envs.pendulum import OOD_RANGES, TRAIN_RANGES, PendulumFamily, PendulumTask

DEFAULT = PendulumTask(mass=1.0, length=1.0, gravity=10.0, damping=0.0)


def _gym_pendulum(task: PendulumTask) -> gym.Env:
    ref = gym.make("Pendulum-v1").unwrapped
    ref.m, ref.l, ref.g = task.mass, task.length, task.gravity
    return ref


def test_single_env_equals_gymnasium_pendulum_for_default_physics():
    env, ref = PendulumFamily().make_env(DEFAULT), _gym_pendulum(DEFAULT)
    obs, _ = env.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    np.testing.assert_array_equal(obs, ref_obs)  # same start state from the same seed
    actions = np.random.default_rng(0).uniform(-3, 3, size=(200, 1)).astype(np.float32)
    for a in actions:
        obs, r, term, _, _ = env.step(a)
        ref_obs, ref_r, *_ = ref.step(a)
        # Gymnasium rounds 3/(m l²)·u to float32; we keep float64, hence the tolerance.
        np.testing.assert_allclose(obs, ref_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(r, ref_r, rtol=1e-5, atol=1e-5)
        assert not term


def test_batched_dynamics_equal_gymnasium_with_the_task_physics():
    """Each sub-env of a batch steps like Pendulum-v1 with that task's m, l and g."""
    family = PendulumFamily()
    tasks = [DEFAULT] + [PendulumTask(t.mass, t.length, t.gravity, 0.0) for t in family.sample_tasks(5, "ood")]
    env = family.make_vec_env(len(tasks), tasks)
    env.reset(seed=1)
    refs = [_gym_pendulum(t) for t in tasks]
    for i, ref in enumerate(refs):
        ref.reset(seed=0)
        ref.state = np.array([env._state["th"][i], env._state["thdot"][i]])
    actions = np.random.default_rng(2).uniform(-2, 2, size=(50, len(tasks), 1)).astype(np.float32)
    for a in actions:
        obs, r, *_ = env.step(a)
        for i, ref in enumerate(refs):
            ref_obs, ref_r, *_ = ref.step(a[i])
            np.testing.assert_allclose(obs[i], ref_obs, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(r[i], ref_r, rtol=1e-4, atol=1e-4)


def test_damping_torque_opposes_the_angular_velocity():
    family = PendulumFamily()
    task = PendulumTask(mass=2.0, length=0.5, gravity=9.0, damping=0.1)
    params, state = family.task_params([task]), family.new_state(1)
    state["th"][:], state["thdot"][:] = 0.3, 2.0
    reward, _ = family.step_state(params, state, np.array([[0.5]], dtype=np.float32), slice(None), None)
    thdot = 2.0 + (3 * 9.0 / (2 * 0.5) * np.sin(0.3) + 3 / (2.0 * 0.25) * (0.5 - 0.1 * 2.0)) * 0.05
    np.testing.assert_allclose(state["thdot"], [thdot])
    np.testing.assert_allclose(state["th"], [0.3 + thdot * 0.05])
    np.testing.assert_allclose(reward, [-(0.3**2 + 0.1 * 4.0 + 0.001 * 0.25)])


def test_ood_parameters_lie_outside_the_training_ranges():
    family = PendulumFamily()
    for split, inside in (("train", True), ("ood", False)):
        for t in family.sample_tasks(200, split, task_rng(0, split)):
            for name, (lo, hi) in TRAIN_RANGES.items():
                value = getattr(t, name)
                assert (lo <= value <= hi) == inside or value in (lo, hi), (split, name, value)
                if not inside:
                    assert any(a <= value <= b for a, b in OOD_RANGES[name])


def test_deterministic_tasks_start_upright_at_rest():
    family = PendulumFamily()
    tasks = family.deterministic_tasks(3, np.random.default_rng(0))
    env = family.make_vec_env(3, tasks)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.tile([1.0, 0.0, 0.0], (3, 1)))
