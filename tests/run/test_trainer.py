"""The training loop's promises: SIGTERM and SIGKILL lose nothing a resume cannot recover, a
diverged run stops without overwriting its last good checkpoint, run directories are created
race-free, and each evaluation is logged once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import metarl
from metarl import train
from metarl.agents.rl2 import RL2, RL2Config
from metarl.core.errors import DivergenceError
from metarl.run.checkpoint import CHECKPOINT, new_run_dir
from metarl.run.config import RunConfig
from metarl.run.logger import read_scalars
from metarl.run.trainer import Trainer
from tests.helpers import TINY_RL2, only_run, run_command

# Forty iterations: long enough to be interrupted mid-run, a few seconds in all.
LONG = [*TINY_RL2[: TINY_RL2.index("--total-env-steps")], "--total-env-steps", "1600", "--eval-tasks", "10",
        "--eval-every", "0", "--checkpoint-every", "0", "--no-progress"]


def _start(logdir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "metarl.train", *LONG, "--logdir", str(logdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(logdir.glob(f"*/checkpoints/{CHECKPOINT}")) and time.monotonic() < deadline:
        time.sleep(0.05)  # checkpoints are written every iteration (--checkpoint-every 0)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    return proc


def _final(run: Path) -> dict:
    return json.loads((run / "eval" / "final_test.json").read_text())


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The final report of the run uninterrupted."""
    logdir = tmp_path_factory.mktemp("straight")
    assert train.main([*LONG, "--logdir", str(logdir)]) == 0
    return _final(only_run(logdir))


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_terminated_or_killed_run_resumes_to_the_uninterrupted_result(sig, code, tmp_path, straight):
    proc = _start(tmp_path / "cut")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    run = only_run(tmp_path / "cut")
    if sig == signal.SIGTERM:
        assert f"Continue with: python -m metarl.train --resume {run}" in err and "Traceback" not in err
        assert f"evaluate what it has learned: python -m metarl.evaluate {run}" in err
    assert not (run / "eval" / "final_test.json").exists()
    assert train.main(["--resume", str(run)]) == 0
    assert _final(run)["score"] == straight["score"]
    steps = [s for s, _ in read_scalars(run)["time/env_steps"]]
    assert steps == sorted(set(steps)), "a resumed run logs no step twice"


class _Diverging(RL2):
    """RL² whose parameters turn to NaN at its fifth iteration."""

    def train_iteration(self):
        stats = super().train_iteration()
        if self.iterations == 5:
            with torch.no_grad():
                self.net.pi.weight.fill_(float("nan"))
        return stats


def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=5)
    agent = _Diverging(RL2Config(num_trials=8, total_env_steps=10_000, lr=0.01), family)
    run = RunConfig(checkpoint_every=0.0, eval_every=0, eval_tasks=5, progress=False)
    run_dir = new_run_dir(str(tmp_path), "metarl/Bandit-v0", "rl2", 0)
    (run_dir / "config.json").write_text("{}")
    trainer = Trainer(agent, "rl2", "metarl/Bandit-v0", run, run_dir)
    # Checkpoints every iteration (--checkpoint-every 0): the one after the fifth finds the NaN.
    with pytest.raises(DivergenceError, match=r"training diverged at iteration 5: non-finite values in net.pi.weight; "
                                              r"likely cause: a step size too large \(--lr 0.01\). the last good "
                                              r"checkpoint \(iteration 4\)"):
        trainer.train()
    saved = torch.load(run_dir / "checkpoints" / CHECKPOINT, weights_only=True)
    assert saved["trainer"]["iteration"] == 4 and torch.isfinite(saved["agent"]["net"]["pi.weight"]).all()
    assert not (run_dir / "eval" / "final_test.json").exists()


def test_a_huge_learning_rate_exits_3_with_the_cause(tmp_path, capfd):
    code, err = run_command(train.main, [*TINY_RL2, "--lr", "1e30", "--logdir", str(tmp_path)], capfd)
    assert code == 3, err
    assert "training diverged at iteration" in err and "--lr 1e+30" in err and "Traceback" not in err


def test_run_directories_are_created_race_free(tmp_path):
    made: list[Path] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            made.append(new_run_dir(str(tmp_path), "metarl/Bandit-v0", "rl2", 0))
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == 50


def test_each_evaluation_is_logged_once_and_a_finished_run_resumes_to_nothing(tmp_path, capfd):
    assert train.main([*TINY_RL2, "--logdir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    capfd.readouterr()
    code, err = run_command(train.main, ["--resume", str(run)], capfd)
    assert code == 0 and "finished at iteration 4" in err, err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    steps = [s for s, _ in read_scalars(run)["eval/score"]]
    assert steps == sorted(set(steps)) and steps[-1] == 160  # every 2nd iteration, the last one once
