"""Data parallelism (torchrun, gloo on CPU): two processes, each with half of a meta-batch, take
the step one process takes on all of it; a torchrun run writes one run directory, checkpoints
every process's streams and resumes."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig, Rollout
from metarl.agents.rl2 import RL2, RL2Config
from metarl.core.distributed import own_slice, shard, split_evenly, world
from metarl.core.errors import UsageError
from metarl.envs.bandit import BanditFamily
from metarl.envs.nav2d import Nav2DFamily
from metarl.rl.rollout import Trials
from metarl.run.checkpoint import CHECKPOINT

ROOT = Path(__file__).resolve().parents[2]


def rl2_agent(task_critic: bool = False) -> RL2:
    # One minibatch: with several, each process permutes its own trials (as DDP does), so the
    # minibatches are drawn differently from one process's.
    config = RL2Config(num_trials=8, minibatches=1, epochs=2, hidden_size=16, lr=1e-2, value_task_input=task_critic)
    return RL2(config, BanditFamily(k=3, n=6), seed=3)


def maml_pg_agent(outer: str) -> MAMLPG:
    # With the default damping (1e-5) conjugate gradient amplifies the rounding differences of
    # summing in another order into 1% of the step; a well-conditioned system shows the step is
    # the same to rounding.
    config = MAMLPGConfig(meta_batch=4, trajectories=3, hidden_sizes=(16,), outer=outer, ppo_epochs=2, cg_damping=0.1)
    return MAMLPG(config, Nav2DFamily(horizon=8), seed=5)


def shard_trials(trials: Trials, part: slice) -> Trials:
    return Trials(trials.returns[part], trials.lengths[part], {k: v[:, part] for k, v in trials.records.items()})


def shard_rollout(ro: Rollout, part: slice) -> Rollout:
    fields = {f.name: getattr(ro, f.name) for f in dataclasses.fields(ro)}
    return Rollout(**{k: (v[part] if hasattr(v, "__getitem__") and not isinstance(v, int) else v)
                      for k, v in fields.items()})


def params_after(algo: str, data: Any) -> list[torch.Tensor]:
    """Build the agent (same seed: same initial parameters), take one update on ``data`` (this
    process's share of it under data parallelism), return its parameters."""
    if algo.startswith("rl2"):
        agent = rl2_agent(task_critic=algo == "rl2-task")
        agent.update(shard_trials(data, own_slice(agent.config.num_trials)))
        return [p.detach().clone() for p in agent.net.parameters()]
    pg = maml_pg_agent(algo.split("-")[1])
    pre, post = data
    part = own_slice(pg.config.meta_batch)
    pg.update([shard_rollout(r, part) for r in pre], shard_rollout(post, part))
    return [p.detach().clone() for p in pg.meta_parameters()]


def one_process_step(algo: str) -> tuple[Any, list[torch.Tensor]]:
    """The full meta-batch collected once, and the parameters after one process's update on it."""
    if algo.startswith("rl2"):
        agent = rl2_agent(task_critic=algo == "rl2-task")
        data: Any = agent._collect()
    else:
        pg = maml_pg_agent(algo.split("-")[1])
        tasks = pg.family.sample_tasks(pg.config.meta_batch, "train", pg.task_rng)
        pre, post = pg.sample_adaptation(tasks, pg.config.inner_steps, pg.config.trajectories, pg.generator, pg.env_rng)
        pg.add_advantages(post)
        data = (pre, post)
    return data, params_after(algo, copy.deepcopy(data))


def _worker(rank: int, size: int, store: str, algo: str, payload: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    try:
        data = torch.load(payload, weights_only=False)
        params = params_after(algo, data)
        torch.save(params, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("algo", ["rl2", "rl2-task", "maml_pg-trpo", "maml_pg-ppo"])
def test_two_processes_take_the_one_process_step(tmp_path: Path, algo: str) -> None:
    data, expected = one_process_step(algo)
    payload = tmp_path / "payload.pt"
    torch.save(data, payload)
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), algo, str(payload), str(tmp_path / "params")), nprocs=2)
    before = params_after(algo, copy.deepcopy(data))  # sanity: the update is deterministic
    moved = max(float((a - b).abs().max()) for a, b in zip(before, [p.clone() for p in expected], strict=True))
    assert moved == 0.0
    for rank in range(2):
        got = torch.load(tmp_path / f"params.{rank}")
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_one_process_world() -> None:
    assert world().size == 1 and world().main
    assert shard(6, "--meta-batch") == 6 and own_slice(6) == slice(0, 6)
    assert split_evenly([1, 2, 3]) == [1, 2, 3]


def _split_worker(rank: int, size: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    try:
        result: dict[str, Any] = {"part": split_evenly(list(range(7))), "slice": [own_slice(6).start, own_slice(6).stop]}
        try:
            shard(5, "--meta-batch")
        except UsageError as exc:
            result["error"] = str(exc)
        Path(f"{out}.{rank}").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_shards_and_uneven_meta_batch(tmp_path: Path) -> None:
    mp.spawn(_split_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "r")), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"r.{i}").read_text()) for i in range(2))
    assert r0["part"] + r1["part"] == list(range(7)) and len(r0["part"]) == 4
    assert (r0["slice"], r1["slice"]) == ([0, 3], [3, 6])
    assert "--meta-batch 5 cannot be split evenly across 2 processes" in r0["error"]


def torchrun(args: list[str], nproc: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "metarl.train", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_trains_checkpoints_and_resumes(tmp_path: Path) -> None:
    # After "--" torchrun passes --n on instead of reading it as an abbreviation of its --nnodes (README).
    flags = ["--", "--algo", "rl2", "--k", "3", "--n", "100", "--num-trials", "32", "--total-env-steps", "6400",
             "--eval-tasks", "20", "--logdir", str(tmp_path / "runs"), "--no-progress", "--no-compare"]
    done = torchrun(flags, 2, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # rank 0 alone made the run directory
    run = runs[0]
    state = torch.load(run / "checkpoints" / CHECKPOINT, weights_only=False)
    assert state["processes"] == 2 and len(state["rank_agents"]) == 1
    assert state["agent"]["env_rng"] != state["rank_agents"][0]["env_rng"]  # each process its own streams
    assert state["trainer"]["env_steps"] == 6400  # both processes' steps
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert report["num_tasks"] == 20  # gathered from both processes' halves
    resumed = torchrun(["--resume", str(run), "--total-env-steps", "9600"], 2, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = torch.load(run / "checkpoints" / CHECKPOINT, weights_only=False)
    assert state["trainer"]["env_steps"] == 9600
    alone = subprocess.run([sys.executable, "-m", "metarl.train", "--resume", str(run), "--total-env-steps", "5120"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           timeout=120)
    assert alone.returncode == 2 and "trained by 2 process(es)" in alone.stderr
