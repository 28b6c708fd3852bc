"""Oracle tests of metarl/CartPole-v0 against Gymnasium's CartPole-v1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.core.seeding import task_rng
from metarl.envs.cartpole import DEFAULTS, CartPoleFamily, CartPoleTask

DEFAULT = CartPoleTask(**DEFAULTS)


def _gym_cartpole(task: CartPoleTask) -> gym.Env:
    ref = gym.make("CartPole-v1").unwrapped
    ref.length = task.pole_length / 2
    ref.masspole, ref.masscart, ref.force_mag = task.pole_mass, task.cart_mass, task.force_mag
    ref.total_mass = ref.masspole + ref.masscart
    ref.polemass_length = ref.masspole * ref.length
    return ref


def test_single_env_equals_gymnasium_cartpole_for_default_physics():
    env, ref = CartPoleFamily().make_env(DEFAULT), _gym_cartpole(DEFAULT)
    rng = np.random.default_rng(0)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        ref_obs, _ = ref.reset(seed=seed)
        np.testing.assert_array_equal(obs, ref_obs)
        for _ in range(200):
            a = int(rng.integers(2))
            obs, r, term, trunc, _ = env.step(a)
            ref_obs, ref_r, ref_term, *_ = ref.step(a)
            np.testing.assert_array_equal(obs, ref_obs)
            assert (r, term) == (ref_r, ref_term)
            if term or trunc:
                break
        assert term  # random pushes topple the pole well within 200 steps


def test_batched_dynamics_equal_gymnasium_with_the_task_physics():
    family = CartPoleFamily()
    tasks = [DEFAULT, *family.sample_tasks(3, "train"), *family.sample_tasks(3, "ood")]
    env = family.make_vec_env(len(tasks), tasks)
    env.reset(seed=4)
    refs = [_gym_cartpole(t) for t in tasks]
    for i, ref in enumerate(refs):
        ref.reset(seed=0)
        ref.state = np.array([env._state[k][i] for k in ("x", "x_dot", "theta", "theta_dot")])
    live = np.ones(len(tasks), dtype=bool)
    actions = np.random.default_rng(1).integers(0, 2, size=(190, len(tasks)))
    for a in actions:
        obs, r, term, _, _ = env.step(a)
        for i in np.flatnonzero(live):
            ref_obs, _, ref_term, *_ = refs[i].step(int(a[i]))
            np.testing.assert_allclose(obs[i], ref_obs, rtol=1e-6, atol=1e-7)
            assert term[i] == ref_term
        live &= ~term
    assert not live.any()


def test_longer_pole_falls_more_slowly():
    family = CartPoleFamily()
    lengths = [0.5, 1.0, 2.0]
    tasks = [
        CartPoleTask(pole_length=length, pole_mass=0.1, cart_mass=1.0, force_mag=10.0, init_bound=0.0)
        for length in lengths
    ]
    params, state = family.task_params(tasks), family.new_state(3)
    state["theta"][:] = 0.05  # same small lean, no push dynamics to speak of: compare angular acceleration
    family.step_state(params, state, np.ones(3, dtype=np.int64), slice(None), None)
    family.step_state(params, state, np.zeros(3, dtype=np.int64), slice(None), None)
    theta_dot = state["theta_dot"]
    assert theta_dot[0] > theta_dot[1] > theta_dot[2] > 0


def test_ood_factors_lie_outside_the_training_range():
    family = CartPoleFamily()
    defaults = np.array(list(DEFAULTS.values()))
    for split in ("train", "ood"):
        tasks = family.sample_tasks(200, split, task_rng(0, split))
        factors = np.array([[t.pole_length, t.pole_mass, t.cart_mass, t.force_mag] for t in tasks]) / defaults
        inside = (factors >= 0.5) & (factors <= 1.5)
        assert inside.all() if split == "train" else not inside.any()
