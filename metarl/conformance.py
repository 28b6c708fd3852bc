"""The conformance suite of task families: what every family must satisfy, runnable on any
family — built in, from your own module, or from an installed plugin.

    report = metarl.check_family("mine/LineGoal-v0")       # or a family instance
    print(report)                                          # one line per check
    report.raise_for_failures()

``python -m metarl.check ID`` runs it from the command line; metarl's own test suite runs the
same checks on every registered family (``tests/envs/test_conformance.py``).

Checks of every family: tasks are reproducible and round-trip through JSON, train and test
tasks differ, a task of another type is refused. RL families: Gymnasium's env checker with no
warning but the few listed in :data:`CHECKER_ALLOWED`, ``reset(options={"task": ...})``, the
same seed gives the same rollout, the batched env matches ``SyncVectorEnv`` over the single
env (exactly on deterministic tasks, in distribution otherwise), the batched env on torch tensors
(``device=``) matches the NumPy one step for step (array families; exactly on deterministic
tasks, in distribution and seeded otherwise), per-env tasks, invalid actions refused. Supervised families: episode shapes and dtypes, support and query disjoint, labels
remapped per episode, seeded and batched episodes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from metarl.core.errors import DatasetNotFoundError
from metarl.core.registry import make_family
from metarl.core.seeding import SPLITS, task_rng
from metarl.core.task import Task, TaskFamily
from metarl.fewshot.family import SupervisedFamily
from metarl.rl.array_family import ArrayRLFamily, runs_on_device
from metarl.rl.backend import to_numpy
from metarl.rl.family import RLFamily

CHECKER_ALLOWED: dict[str, str] = {
    "A Box observation space minimum value is -infinity": "positions and velocities without bounds "
    "(Nav2D, CartPole's velocities, MuJoCo, the RL² trial observation) have no finite limit to declare",
    "A Box observation space maximum value is infinity": "as above",
    "For Box action spaces, we recommend using a symmetric and normalized space": "Pendulum keeps "
    "Gymnasium Pendulum-v1's torque range [-2, 2] (metarl's policies act in [-1, 1] units and rescale)",
    "A Box observation space maximum and minimum values are equal": "Meta-World's own observation space "
    "with the goal hidden (its ML setting) declares the goal's three coordinates as [0, 0]",
}
"""Warnings of Gymnasium's env checker that the suite accepts, and why."""


class Skip(Exception):
    """A check that does not apply to this family (the reason is the message)."""


@dataclasses.dataclass
class CheckResult:
    """One check: passed (True), failed (False) or skipped (None), with what it found."""

    name: str
    passed: bool | None
    detail: str = ""


@dataclasses.dataclass
class ConformanceReport:
    """The results of :func:`check_family`."""

    family: str
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return all(r.passed is not False for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.passed is False]

    def raise_for_failures(self) -> None:
        """Raise ``AssertionError`` listing the failed checks."""
        if not self.ok:
            raise AssertionError(f"{self.family} fails: " + "; ".join(f"{r.name}: {r.detail}" for r in self.failures()))

    def __str__(self) -> str:
        marks = {True: "pass", False: "FAIL", None: "skip"}
        lines = [f"conformance of {self.family}:"]
        lines += [f"  {marks[r.passed]:4}  {r.name}" + (f" — {r.detail}" if r.detail else "") for r in self.results]
        passed = sum(r.passed is True for r in self.results)
        lines.append(f"{passed} passed, {len(self.failures())} failed, "
                     f"{sum(r.passed is None for r in self.results)} skipped")
        return "\n".join(lines)


def check_env_strictly(env: gym.Env) -> None:
    """Gymnasium's ``check_env``, failing on any warning not in :data:`CHECKER_ALLOWED`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(text in str(w.message) for text in CHECKER_ALLOWED)]
    assert not unexpected, f"Gymnasium's env checker warned: {unexpected}"


# ---------------------------------------------------------------------------------------------
# Checks of every family
# ---------------------------------------------------------------------------------------------


def _tasks_reproducible(family: TaskFamily[Any]) -> str:
    for split in SPLITS:
        tasks = family.sample_tasks(4, split, task_rng(3, split))
        assert tasks == family.sample_tasks(4, split, task_rng(3, split)), f"{split}: the same seed gave other tasks"
        for task in tasks:
            text = json.dumps(task.to_json())
            again = family.task_from_json(json.loads(text))
            assert again == task and hash(again) == hash(task), f"{split}: {task} does not survive a JSON round trip"
    return "every split reproducible, JSON round trips exact"


def _splits_disjoint(family: TaskFamily[Any]) -> str:
    train = set(family.sample_tasks(50, "train", task_rng(3, "train")))
    test = set(family.sample_tasks(50, "test", task_rng(3, "test")))
    shared = train & test
    assert not shared, (f"{len(shared)} of 50 test tasks are also train tasks (e.g. {next(iter(shared))}): held-out "
                        "tasks must differ from training ones (partition a finite task set, or label the split)")
    return "50 train and 50 test tasks share none"


@dataclasses.dataclass(frozen=True)
class _Foreign(Task):
    """A task type no family accepts."""

    value: int = 0


def _foreign_task_refused(family: TaskFamily[Any]) -> str:
    try:
        family.validate_task(_Foreign())
    except TypeError:
        return "a task of another type raises TypeError"
    raise AssertionError("validate_task accepted a task of another type")


# ---------------------------------------------------------------------------------------------
# Checks of RL families
# ---------------------------------------------------------------------------------------------


def _actions(space: gym.Space, steps: int, seed: int) -> list[Any]:
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _rollout(env: Any, actions: Sequence[Any], seed: int) -> list[tuple[Any, ...]]:
    """Each step's results as NumPy copies (from the device for a device env)."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(to_numpy(obs).copy(), None, None, None, None)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        final = (to_numpy(info["final_obs"]).copy(), to_numpy(info["_final_obs"]).copy()) if "_final_obs" in info else None
        out.append((to_numpy(obs).copy(), to_numpy(r).copy(), to_numpy(term).copy(), to_numpy(trunc).copy(), final))
    return out


def _assert_same_steps(ours: Sequence[tuple[Any, ...]], ref: Sequence[tuple[Any, ...]], what: str) -> None:
    """Two rollouts agree step for step (float tolerance): observations, rewards, terminated,
    truncated, and the final observations of the episodes that ended under ``SAME_STEP``."""
    for step, (x, y) in enumerate(zip(ours, ref, strict=True)):
        for name, u, v in zip(("obs", "reward", "terminated", "truncated"), x[:4], y[:4], strict=True):
            if u is not None:
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6, err_msg=f"{what}: {name}, step {step}")
        if x[4] is None and y[4] is None:
            continue
        # An env may report an all-False mask where the other reports nothing (the device env
        # always fills ``info``): compare the masks with "absent" as "none ended".
        none_ended = (None, np.zeros(len(x[0]), dtype=bool))
        (final, mask), (ref_final, ref_mask) = x[4] or none_ended, y[4] or none_ended
        np.testing.assert_array_equal(mask, ref_mask, err_msg=f"{what}: _final_obs, step {step}")
        for i in np.flatnonzero(mask):
            assert final is not None and ref_final is not None
            np.testing.assert_allclose(final[i], ref_final[i], rtol=1e-5, atol=1e-6, err_msg=f"{what}: final_obs, step {step}")


def _sync(family: RLFamily[Any], tasks: Sequence[Any], mode: AutoresetMode) -> SyncVectorEnv:
    return SyncVectorEnv([functools.partial(family.make_env, t) for t in tasks], autoreset_mode=mode)


def _gymnasium_checker(family: RLFamily[Any]) -> str:
    env = family.make_env()
    try:
        check_env_strictly(env)
    finally:
        env.close()
    return "no warning outside the allowed list"


def _reset_switches_task(family: RLFamily[Any]) -> str:
    a, b = family.sample_tasks(2, "test")
    env: Any = family.make_env()
    env.reset(seed=0, options={"task": a})
    assert env.task == a, "reset(options={'task': a}) did not switch to a"
    env.reset(options={"task": b})
    assert env.task == b
    env.reset()
    assert env.task == b, "a plain reset changed the task"
    env.close()
    return "reset(options={'task': ...}) switches, a plain reset keeps"


def _same_seed_same_rollout(family: RLFamily[Any]) -> str:
    tasks = family.sample_tasks(8, "train")
    actions = _actions(gym.vector.utils.batch_space(family.action_space, 8), 3 * family.max_episode_steps + 5, 1)
    runs = []
    for _ in range(2):
        env = family.make_vec_env(8, tasks)
        runs.append(_rollout(env, actions, seed=5))
        env.close()
    for t, (x, y) in enumerate(zip(*runs, strict=True)):
        for u, v in zip(x[:4], y[:4], strict=True):
            np.testing.assert_array_equal(u, v, err_msg=f"batched env, step {t}")
    single = []
    for _ in range(2):
        one = family.make_env(tasks[0])
        obs, _ = one.reset(seed=9)
        trajectory = [obs]
        for a in actions[: family.max_episode_steps]:
            obs, r, term, trunc, _ = one.step(a[0])
            trajectory += [obs, r, term, trunc]
            if term or trunc:
                break
        single.append(trajectory)
        one.close()
    for u, v in zip(*single, strict=True):
        np.testing.assert_array_equal(u, v, err_msg="single env")
    return "batched and single env"


def _matches_sync_exactly(family: RLFamily[Any]) -> str:
    tasks = family.deterministic_tasks(6, np.random.default_rng(0))
    if not tasks:
        raise Skip("no tasks with deterministic outcomes (see the in-distribution check)")
    actions = _actions(gym.vector.utils.batch_space(family.action_space, len(tasks)), 3 * family.max_episode_steps + 4, 2)
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        native = family.make_vec_env(len(tasks), tasks, autoreset_mode=mode)
        assert native.metadata["autoreset_mode"] == mode, f"metadata does not declare {mode}"
        _assert_same_steps(_rollout(native, actions, 0), _rollout(_sync(family, tasks, mode), actions, 0), mode.value)
        native.close()
    return f"{len(tasks)} deterministic tasks, NEXT_STEP and SAME_STEP autoreset"


def _same_distribution(family: RLFamily[Any], make: Callable[[Sequence[Any]], Any],
                       make_ref: Callable[[Sequence[Any]], Any], what: str) -> str:
    """Same tasks, same actions: per-task mean reward and observation of the envs ``make`` and
    ``make_ref`` build agree (paired t-test)."""
    n = 48
    tasks = family.sample_tasks(n, "train", np.random.default_rng(4))
    actions = _actions(gym.vector.utils.batch_space(family.action_space, n), max(200, 4 * family.max_episode_steps), 3)
    stats = []
    for env in (make(tasks), make_ref(tasks)):
        run = _rollout(env, actions, seed=11)
        rewards = np.stack([r for _, r, *_ in run[1:]])
        obs = np.stack([np.asarray(o, dtype=np.float64).reshape(n, -1).mean(axis=1) for o, *_ in run])
        stats.append((rewards.mean(axis=0), obs.mean(axis=0)))
        env.close()
    ts = []
    for k, name in enumerate(("reward", "observation")):
        d = stats[0][k] - stats[1][k]
        se = d.std(ddof=1) / np.sqrt(n)
        if se == 0:
            np.testing.assert_allclose(d, 0, atol=1e-9, err_msg=name)
            continue
        t = d.mean() / se
        assert abs(t) < 4.0, f"mean {name} differs between {what}: t = {t:.2f}"
        ts.append(f"{name} t = {t:+.2f}")
    return ", ".join(ts) or "identical"


def _matches_sync_in_distribution(family: RLFamily[Any]) -> str:
    """Same tasks, same actions: per-task mean reward and observation agree (paired t-test)."""
    if not family.stochastic:
        raise Skip("deterministic family: the exact check covers it")
    return _same_distribution(family, lambda tasks: family.make_vec_env(len(tasks), tasks),
                              lambda tasks: _sync(family, tasks, AutoresetMode.NEXT_STEP),
                              "the batched and the single env")


def _array_family(family: RLFamily[Any]) -> ArrayRLFamily[Any]:
    if not runs_on_device(family):
        raise Skip("its envs step on NumPy or the host only (not an array family declaring array_api)")
    assert isinstance(family, ArrayRLFamily)
    return family


def _rollout_disabled(env: Any, actions: Sequence[Any], seed: int) -> list[tuple[Any, ...]]:
    """A rollout under ``DISABLED`` autoreset, resetting the ended sub-envs by ``reset_mask``."""
    out = _rollout(env, [], seed)
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((to_numpy(obs).copy(), to_numpy(r).copy(), to_numpy(term).copy(), to_numpy(trunc).copy(), None))
        done = to_numpy(term) | to_numpy(trunc)
        if done.any():
            obs, _ = env.reset(options={"reset_mask": done})
            out.append((to_numpy(obs).copy(), None, None, None, None))
    return out


def _device_matches_numpy_exactly(family: RLFamily[Any], device: Any = "cpu") -> str:
    """The device env returns tensors on its device that equal the NumPy env's results step for
    step from the same deterministic tasks and actions, under every autoreset mode."""
    array_family = _array_family(family)
    tasks = family.deterministic_tasks(6, np.random.default_rng(0))
    if not tasks:
        raise Skip("no tasks with deterministic outcomes (see the in-distribution check)")
    n = len(tasks)
    actions = _actions(gym.vector.utils.batch_space(family.action_space, n), 2 * family.max_episode_steps + 4, 2)
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED):
        ours = array_family.make_vec_env(n, tasks, autoreset_mode=mode, device=device)
        ref = array_family.make_vec_env(n, tasks, autoreset_mode=mode)
        obs, _ = ours.reset(seed=0)
        step = ours.step(torch.as_tensor(actions[0], device=device))
        for name, value, dtype in zip(("obs", "reward", "terminated", "truncated"), (obs, *step[1:4]),
                                      (torch.float32, torch.float64, torch.bool, torch.bool), strict=True):
            assert isinstance(value, torch.Tensor) and value.device == torch.device(device), f"{name} is not on {device}"
            assert value.dtype == dtype and value.shape[0] == n, f"{name}: {value.dtype} of shape {tuple(value.shape)}"
        tensor_actions = [torch.as_tensor(a, device=device) for a in actions]
        run = _rollout_disabled if mode == AutoresetMode.DISABLED else _rollout
        _assert_same_steps(run(ours, tensor_actions, 0), run(ref, actions, 0), f"{device} vs NumPy, {mode.value}")
        ours.close()
        ref.close()
    return f"{n} deterministic tasks on {device}, NEXT_STEP, SAME_STEP and DISABLED autoreset"


def _device_matches_numpy_in_distribution(family: RLFamily[Any], device: Any = "cpu") -> str:
    """On ordinary (stochastic) tasks the device env agrees with the NumPy env in distribution,
    and its generator is seeded by ``reset(seed=...)``."""
    array_family = _array_family(family)
    if not family.stochastic:
        raise Skip("deterministic family: the exact check covers it")
    tasks = family.sample_tasks(8, "train", np.random.default_rng(5))
    actions = [torch.as_tensor(a, device=device)
               for a in _actions(gym.vector.utils.batch_space(family.action_space, 8), family.max_episode_steps + 3, 4)]
    runs = [_rollout(array_family.make_vec_env(8, tasks, device=device), actions, seed) for seed in (5, 5, 6)]
    _assert_same_steps(runs[0], runs[1], "the same seed twice")
    differs = any(not np.array_equal(x[k], y[k]) for x, y in zip(runs[0], runs[2], strict=True) for k in range(2)
                  if x[k] is not None)
    assert differs, "another seed gave the same rollout"
    return "seeded; " + _same_distribution(
        family, lambda ts: array_family.make_vec_env(len(ts), ts, device=device),
        lambda ts: array_family.make_vec_env(len(ts), ts), f"the {device} and the NumPy env")


def _per_env_tasks(family: RLFamily[Any]) -> str:
    tasks = family.sample_tasks(5, "test")
    env = family.make_vec_env(5)
    env.reset(seed=0, options={"tasks": tasks})
    assert env.tasks == tasks, "reset(options={'tasks': ...}) did not reach the sub-envs"
    try:
        env.set_tasks(tasks[:2])
    except ValueError:
        return "each sub-env has its own task; a wrong count is refused"
    finally:
        env.close()
    raise AssertionError("set_tasks accepted 2 tasks for 5 sub-envs")


def _invalid_actions_refused(family: RLFamily[Any]) -> str:
    space = family.action_space
    bad: list[Any] = [np.zeros((*(space.shape or ()), 2), dtype=space.dtype)]  # the wrong shape
    if isinstance(space, gym.spaces.Discrete):
        bad += [int(space.start) - 1, int(space.start + space.n), 0.5]
    elif isinstance(space, gym.spaces.Box):
        bad.append(np.full(space.shape, np.nan, dtype=space.dtype))
    env, vec = family.make_env(), family.make_vec_env(3)
    env.reset(seed=0)
    vec.reset(seed=0)
    try:
        accepted = [action for action in bad if not _refuses(env.step, action)]
        assert not accepted, f"the single env accepted the invalid action(s) {accepted!r}"
        assert _refuses(vec.step, np.stack([space.sample(), space.sample()])), "the batched env accepted 2 actions for 3"
    finally:
        env.close()
        vec.close()
    return f"{len(bad)} invalid actions and a short batch refused"


def _refuses(step: Callable[[Any], Any], action: Any) -> bool:
    try:
        step(action)
    except ValueError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Checks of supervised families
# ---------------------------------------------------------------------------------------------

SHOTS, QUERIES = 2, 3


def _counts(family: SupervisedFamily[Any]) -> tuple[int, int]:
    ways = family.num_outputs if family.problem == "classification" else 1
    return SHOTS * ways, QUERIES * ways


def _rows(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def _episode_shapes(family: SupervisedFamily[Any]) -> str:
    assert family.problem in ("classification", "regression"), f"problem is {family.problem!r}"
    n_support, n_query = _counts(family)
    for split in SPLITS:
        task = family.sample_tasks(1, split, task_rng(0, split))[0]
        ep = family.sample_episode(task, SHOTS, QUERIES, np.random.default_rng(0))
        assert ep.support_x.shape == (n_support, *family.input_shape), f"{split}: support_x {tuple(ep.support_x.shape)}"
        assert ep.query_x.shape == (n_query, *family.input_shape), f"{split}: query_x {tuple(ep.query_x.shape)}"
        assert len(ep.support_y) == n_support and len(ep.query_y) == n_query, f"{split}: label counts"
        assert ep.support_x.dtype == ep.query_x.dtype == torch.float32, f"{split}: inputs must be float32"
        assert torch.isfinite(ep.support_x).all() and torch.isfinite(ep.query_x).all(), f"{split}: inputs not finite"
        if family.problem == "classification":
            assert ep.support_y.dtype == ep.query_y.dtype == torch.int64, f"{split}: labels must be int64"
        else:
            assert ep.support_y.shape[1:] == ep.query_y.shape[1:]
            assert int(np.prod(ep.support_y.shape[1:])) == family.num_outputs, f"{split}: outputs"
    return f"{n_support} support and {n_query} query examples of {family.input_shape} in every split"


def _support_query_disjoint(family: SupervisedFamily[Any]) -> str:
    rng = np.random.default_rng(1)
    for task in family.sample_tasks(5, "test", task_rng(1, "test")):
        ep = family.sample_episode(task, SHOTS, QUERIES, rng)
        assert not _rows(ep.support_x) & _rows(ep.query_x), "a support example reappears among the queries"
        assert len(_rows(ep.support_x)) == len(ep.support_x), "a support example is repeated"
    return "5 episodes"


def _labels_remapped(family: SupervisedFamily[Any]) -> str:
    if family.problem != "classification":
        raise Skip("regression family: no class labels to remap")
    ways = family.num_outputs
    rng = np.random.default_rng(2)
    task = family.sample_tasks(1, "train", task_rng(2, "train"))[0]
    labels_of: dict[bytes, list[int]] = {}  # each example drawn, and the label it got in each episode
    for _ in range(12):
        ep = family.sample_episode(task, SHOTS, QUERIES, rng)
        assert torch.bincount(ep.support_y, minlength=ways).tolist() == [SHOTS] * ways, "support labels per class"
        assert torch.bincount(ep.query_y, minlength=ways).tolist() == [QUERIES] * ways, "query labels per class"
        for x, y in zip(torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y]), strict=True):
            labels_of.setdefault(x.numpy().tobytes(), []).append(int(y))
    recurring = [labels for labels in labels_of.values() if len(labels) > 1]
    if len(recurring) >= 5:  # examples drawn in several episodes tell whether their class kept its label
        assert any(len(set(labels)) > 1 for labels in recurring), "labels must be remapped per episode"
    return f"labels 0..{ways - 1}, balanced, remapped per episode"


def _seeded_and_batched(family: SupervisedFamily[Any]) -> str:
    tasks = family.sample_tasks(4, "train", task_rng(3, "train"))
    a = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(5))
    b = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(5))
    for u, v in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True):
        assert torch.equal(u, v), "the same task and seed must give the same episode"
    c = family.sample_episode(tasks[0], SHOTS, QUERIES, np.random.default_rng(6))
    assert not torch.equal(a.query_x, c.query_x), "another seed must give another episode"
    batch = family.sample_episodes(tasks, SHOTS, QUERIES, np.random.default_rng(5))
    n_support, n_query = _counts(family)
    assert batch.support_x.shape == (4, n_support, *family.input_shape), "batched support_x"
    assert batch.query_x.shape == (4, n_query, *family.input_shape), "batched query_x"
    again = family.sample_episodes(tasks, SHOTS, QUERIES, np.random.default_rng(5))
    assert torch.equal(batch.query_x, again.query_x), "batched episodes must be reproducible"
    return "same seed, same episode; batched episodes"


CHECKS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "tasks reproducible, JSON round trip": ("any", _tasks_reproducible),
    "train and test tasks differ": ("any", _splits_disjoint),
    "foreign task refused": ("any", _foreign_task_refused),
    "Gymnasium env checker": ("rl", _gymnasium_checker),
    "reset switches the task": ("rl", _reset_switches_task),
    "same seed, same rollout": ("rl", _same_seed_same_rollout),
    "batched env = SyncVectorEnv, exactly": ("rl", _matches_sync_exactly),
    "batched env = SyncVectorEnv, in distribution": ("rl", _matches_sync_in_distribution),
    "device env = NumPy env, exactly": ("rl", _device_matches_numpy_exactly),
    "device env = NumPy env, in distribution": ("rl", _device_matches_numpy_in_distribution),
    "per-env tasks": ("rl", _per_env_tasks),
    "invalid actions refused": ("rl", _invalid_actions_refused),
    "episode shapes and dtypes": ("supervised", _episode_shapes),
    "support and query disjoint": ("supervised", _support_query_disjoint),
    "labels remapped per episode": ("supervised", _labels_remapped),
    "seeded and batched episodes": ("supervised", _seeded_and_batched),
}
"""Every check by name: the kind of family it applies to, and the function."""

_DEVICE_CHECKS: dict[str, Callable[[Any, Any], str]] = {
    "device env = NumPy env, exactly": _device_matches_numpy_exactly,
    "device env = NumPy env, in distribution": _device_matches_numpy_in_distribution,
}
"""The checks that take the device to run on as well."""


def check_family(family: str | TaskFamily[Any], only: Sequence[str] | None = None,
                 device: str | torch.device = "cpu", **kwargs: Any) -> ConformanceReport:
    """Run the conformance suite on ``family`` (an id, ``module:Id``, or an instance; ``kwargs``
    build it from an id) and return the report; ``only`` limits it to the named checks, and
    ``device`` is where the device-env checks run the family's batched env on torch tensors.

    A family whose data is missing (``DatasetNotFoundError``) skips every check, saying so.
    """
    name = family if isinstance(family, str) else type(family).__name__
    instance = make_family(family, **kwargs) if isinstance(family, str) else family
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; the checks are: {', '.join(CHECKS)}")
    results = []
    for check, (kind, fn) in CHECKS.items():
        if (only and check not in only) or kind not in ("any", instance.kind):
            continue
        try:
            detail = _DEVICE_CHECKS[check](instance, device) if check in _DEVICE_CHECKS else fn(instance)
            results.append(CheckResult(check, True, detail))
        except Skip as exc:
            results.append(CheckResult(check, None, str(exc)))
        except DatasetNotFoundError as exc:
            results.append(CheckResult(check, None, f"data absent: {exc}"))
        except Exception as exc:  # noqa: BLE001 (a failed check is reported, not raised)
            results.append(CheckResult(check, False, f"{type(exc).__name__}: {exc}"))
    return ConformanceReport(name, results)
