"""Meta-World families: the variations are Meta-World's own, tasks reach the simulator,
rewards are Meta-World's and success is reported, splits are as documented."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("metaworld")

import metaworld  # noqa: E402
from metaworld.policies import SawyerReachV3Policy  # noqa: E402

import metarl  # noqa: E402
from metarl.core.seeding import task_rng  # noqa: E402
from metarl.envs.metaworld_families import MetaWorldTask, benchmark_tasks  # noqa: E402

ML10_TRAIN = {
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "sweep-v3",
    "basketball-v3",
}
ML10_TEST = {"drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"}


def _rand_vecs(tasks) -> list[tuple[str, tuple[float, ...]]]:
    return [(t.env_name, tuple(pickle.loads(t.data)["rand_vec"].tolist())) for t in tasks]


def test_ml1_variations_are_metaworlds_own():
    """The fast generation (one hand-reset step) gives exactly unpatched Meta-World's tasks."""
    reference = metaworld.ML1("reach-v3", seed=0)
    ours = benchmark_tasks("ML1", 0, "reach-v3")
    assert [(t.env_name, t.rand_vec) for t in ours["train"]] == _rand_vecs(reference.train_tasks)
    assert [(t.env_name, t.rand_vec) for t in ours["test"]] == _rand_vecs(reference.test_tasks)


def test_ml10_test_variations_are_metaworlds_own():
    # Unpatched ML10 takes ~17 s; its test split alone (5 other environments' resets) ~5 s.
    reference = metaworld.CustomML([], list(metaworld.env_dict.ML10_V3["test"]), seed=0)
    ours = benchmark_tasks("ML10", 0)
    assert [(t.env_name, t.rand_vec) for t in ours["test"]] == _rand_vecs(reference.test_tasks)


def test_splits_are_as_documented():
    ml1 = metarl.make_family("metarl/ML1-v0")
    pools = ml1.tasks_by_split()
    assert [len(pools[s]) for s in ("train", "test", "ood")] == [50, 50, 50]
    assert {t.env_name for t in pools["train"] + pools["test"]} == {"reach-v3"}
    assert {t.env_name for t in pools["ood"]} == {"reach-wall-v3"}
    assert not set(pools["train"]) & set(pools["test"])
    # Up to the pool's size, a draw has no repeats; beyond it, it repeats.
    assert len(set(ml1.sample_tasks(50, "train", task_rng(0, "train")))) == 50
    assert set(ml1.sample_tasks(50, "train", task_rng(0, "train"))) == set(pools["train"])
    assert len(ml1.sample_tasks(60, "test")) == 60
    with pytest.raises(ValueError, match="ood_env_name"):
        metarl.make_family("metarl/ML1-v0", env_name="door-open-v3").sample_tasks(1, "ood")
    with pytest.raises(ValueError, match="not a Meta-World"):
        metarl.make_family("metarl/ML1-v0", env_name="reach-v2")

    ml10 = metarl.make_family("metarl/ML10-v0")
    pools = ml10.tasks_by_split()
    assert [len(pools[s]) for s in ("train", "test", "ood")] == [500, 250, 250]
    assert {t.env_name for t in pools["train"]} == ML10_TRAIN
    assert {t.env_name for t in pools["test"]} == ML10_TEST
    ood_names = {t.env_name for t in pools["ood"]}
    assert ood_names == {"bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3"}


def test_tasks_reach_the_simulator_and_rewards_are_metaworlds():
    """Stepping our env equals stepping Meta-World's env set to the same benchmark task."""
    family = metarl.make_family("metarl/ML1-v0", horizon=30)
    reference = metaworld.ML1("reach-v3", seed=0)  # the same variations (test above)
    k = 7
    task = family.tasks_by_split()["test"][k]
    ref = reference.test_classes["reach-v3"]()
    ref.set_task(reference.test_tasks[k])
    env = family.make_env(task)
    obs, _ = env.reset(seed=0)
    ref_obs, _ = ref.reset()
    np.testing.assert_array_equal(obs, ref_obs)
    assert (obs[-3:] == 0).all(), "the goal is hidden in ML1"
    rng = np.random.default_rng(0)
    for t in range(30):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, reward, term, trunc, info = env.step(action)
        ref_obs, ref_reward, _, _, ref_info = ref.step(action)
        np.testing.assert_array_equal(obs, ref_obs)
        assert reward == pytest.approx(float(ref_reward)) and info["success"] == ref_info["success"]
        assert not term and trunc == (t == 29)


@pytest.mark.filterwarnings("ignore:Constant\\(s\\) may be too high")  # Meta-World's policy warns about itself
def test_expert_succeeds_and_success_is_reported():
    """Meta-World's scripted reach policy, shown the goal, solves every task it is given;
    doing nothing solves none. ``episode_success`` gives the success rate."""
    family = metarl.make_family("metarl/ML1-v0", observable_goal=True, terminate_on_success=True, horizon=150)
    tasks = family.sample_tasks(3, "test")
    policy = SawyerReachV3Policy()
    env = family.make_vec_env(3, tasks)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[:, -3:], [t.rand_vec[-3:] for t in tasks])  # reach's goal is rand_vec[3:]
    ended = np.zeros(3, dtype=bool)
    successes, returns, ret = np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(150):
        obs, reward, term, trunc, info = env.step(np.stack([policy.get_action(o) for o in obs]))
        ret += np.where(ended, 0.0, reward)
        done = (term | trunc) & ~ended
        successes[done] = info["episode_success"][done]
        returns[done] = ret[done]
        ended |= done
        if ended.all():
            break
    assert ended.all() and successes.mean() == 1.0 and (returns > 0).all()

    lazy = metarl.make_family("metarl/ML1-v0", horizon=20)
    env = lazy.make_env(tasks[0])
    env.reset(seed=0)
    for _ in range(20):
        *_, info = env.step(np.zeros(4, dtype=np.float32))
    assert info["episode_success"] == 0.0


def test_per_env_tasks_reach_the_sub_envs_across_environments():
    family = metarl.make_family("metarl/ML10-v0", horizon=10)
    pools = family.tasks_by_split()
    tasks = [pools["train"][0], pools["test"][60], pools["ood"][120]]
    assert len({t.env_name for t in tasks}) == 3
    env = family.make_vec_env(3)
    env.reset(seed=0, options={"tasks": tasks})
    assert env.tasks == tasks
    for sub, task in zip(env.envs, tasks, strict=True):
        assert isinstance(sub._active, metaworld.env_dict.ALL_V3_ENVIRONMENTS[task.env_name])
    actions = [np.random.default_rng(i).uniform(-1, 1, (3, 4)).astype(np.float32) for i in range(10)]
    rewards = np.array([env.step(a)[1] for a in actions])
    for i, task in enumerate(tasks):
        single = family.make_env(task)
        single.reset(seed=0)
        np.testing.assert_array_equal(rewards[:, i], [single.step(a[i])[1] for a in actions])


def test_task_json_round_trip_and_validation():
    family = metarl.make_family("metarl/ML1-v0")
    task = family.sample_tasks(1, "ood")[0]
    assert family.task_from_json(task.dumps()) == task
    with pytest.raises(ValueError, match="unknown Meta-World environment"):
        family.validate_task(MetaWorldTask("reach-v9", task.rand_vec))


@pytest.mark.slow
def test_module_imports_and_registers_nothing_without_metaworld():
    code = (
        "import sys; sys.modules['metaworld'] = None\n"
        "import metarl, metarl.envs.metaworld_families as m\n"
        "assert not m.METAWORLD_AVAILABLE\n"
        "ids = metarl.list_families()\n"
        "assert 'metarl/ML1-v0' not in ids and 'metarl/ML10-v0' not in ids and 'metarl/AntDir-v0' in ids, ids\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
