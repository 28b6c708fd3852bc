"""The newcomer's path: help that lists every way in, the end-of-run summary beside the
family's baselines, budgets that the progress bar and ``--resume`` honour, and periodic
evaluation kept within its share of the training time."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

import metarl
from metarl import evaluate, train
from metarl.core.registry import algo_spec, list_algos
from metarl.run.compare import comparable, score_baselines
from metarl.run.config import RunConfig
from metarl.run.trainer import Trainer
from tests.helpers import TINY_RL2, only_run, run_command, snapshot


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny finished RL² run, its stderr and its run directory."""
    logdir = tmp_path_factory.mktemp("runs")
    proc = subprocess.run([sys.executable, "-m", "metarl.train", *TINY_RL2, "--logdir", str(logdir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, only_run(logdir)


# -- help ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_help_lists_the_ways_in_and_the_run_flags():
    proc = subprocess.run([sys.executable, "-m", "metarl.train", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.replace("│", " ").split())
    for flag in ("--algo NAME", "--env ID", "--config FILE", "--resume RUN_DIR", "--import MODULE", "--debug",
                 "--algo NAME --help", "--time-limit", "--eval-budget", "--total-env-steps", "--k"):
        assert flag in text, flag


def test_help_of_another_algorithm_shows_its_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--algo", "maml", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--inner-steps" in out and "--meta-sgd" in out and "--total-env-steps" not in out


@pytest.mark.parametrize("argv", [["--help"], ["-h"]])
def test_evaluate_help_works_without_a_run_directory(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate.main(argv)
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "RUN_DIR" in out and "--algo NAME --env ID" in out and "--split" in out and "--num-tasks" in out


# -- the end of a run ---------------------------------------------------------------------------


def test_a_finished_run_prints_its_score_beside_the_baselines_and_the_next_commands(finished):
    err, run = finished
    final = json.loads((run / "eval" / "final_test.json").read_text())
    assert f"rl2 (trained) {final['score']['mean']:9.4g}".split() == \
        [line for line in err.splitlines() if "rl2 (trained)" in line][0].split()[:3]
    for baseline in ("random", "ucb1", "thompson"):
        assert any(line.split()[0] == baseline and "(paired)" in line for line in err.splitlines()), baseline
    assert f"tensorboard --logdir {run.parent}" in err
    assert f"python -m metarl.evaluate {run} --split ood" in err
    assert str(run / "eval" / "final_test.png") in err and (run / "eval" / "final_test.png").is_file()
    saved = json.loads((run / "eval" / "baselines.json").read_text())
    assert [r["algo"] for r in saved] == ["random", "ucb1", "thompson"]


def test_baselines_are_scored_on_the_trained_agents_tasks_with_the_same_protocol():
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=20)
    tasks = family.sample_tasks(200, "test")
    thompson = algo_spec("thompson").load()
    result = thompson(thompson.config_class(), family).evaluate(tasks, seed=5)
    refs, notes = score_baselines(family, "metarl/Bandit-v0", thompson.config_class(), result, tasks, seed=5)
    by_name = {r.algo: r for r in refs}
    assert notes == [] and set(by_name) == {"random", "ucb1", "thompson"}
    # Thompson against itself on the same tasks and seed: the same draws, a paired difference of 0.
    assert by_name["thompson"].difference == 0.0 and by_name["thompson"].difference_ci95 == 0.0
    assert by_name["random"].mean == pytest.approx(10.0, abs=1.0)  # n/2 for p ~ U[0, 1]


def test_a_baseline_of_another_score_is_compared_per_episode():
    family = metarl.make_family("metarl/Nav2D-v0", horizon=5)
    tasks = family.sample_tasks(20, "test")
    random_cls = algo_spec("random").load()
    result = random_cls(random_cls.config_class(trial_episodes=3), family).evaluate(tasks, seed=0)
    name, scores = comparable(result, "return_step_1", "return")
    assert name == "return_per_episode" and scores == pytest.approx(result.curve.mean(axis=1))


def test_no_compare_skips_the_baselines(tmp_path, capfd):
    code, err = run_command(train.main, [*TINY_RL2, "--logdir", str(tmp_path), "--no-compare"], capfd)
    assert code == 0 and "thompson" not in err and "rl2 (trained)" in err
    assert not (only_run(tmp_path) / "eval" / "baselines.json").exists()


# -- budgets ------------------------------------------------------------------------------------


def test_every_learning_algorithm_names_its_budget_fields():
    for spec in list_algos():
        cls = spec.load()
        if cls.learns:
            names = {f.name for f in dataclasses.fields(cls.config_class)}
            assert cls.budget_fields and set(cls.budget_fields) <= names, spec.name


def _trainer(tmp_path, **run):
    agent_cls = algo_spec("rl2").load()
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=5)
    agent = agent_cls(agent_cls.config_class(num_trials=8, total_env_steps=400), family)
    return Trainer(agent, "rl2", "metarl/Bandit-v0", RunConfig(**run), tmp_path)


def test_progress_follows_whichever_budget_is_further_along(tmp_path):
    trainer = _trainer(tmp_path, time_limit=100.0)
    trainer.elapsed = 25.0
    assert trainer.progress() == 0.25
    trainer.agent.env_steps = 200
    assert trainer.progress() == 0.5
    trainer.elapsed = 1000.0
    assert trainer.progress() == 1.0
    assert _trainer(tmp_path).progress() == 0.0  # no time limit: the steps alone


def test_periodic_evaluation_keeps_to_its_share_of_training_time(tmp_path):
    trainer = _trainer(tmp_path, eval_budget=0.1)
    trainer.elapsed = 29.0
    assert not trainer._evaluation_due()  # the first comes after 30 s of training
    trainer.elapsed = 30.0
    assert trainer._evaluation_due()
    trainer._eval_seconds, trainer._eval_end = 5.0, 35.0  # it took 5 s: the next after 50 s more
    trainer.elapsed = 84.0
    assert not trainer._evaluation_due()
    trainer.elapsed = 85.0
    assert trainer._evaluation_due()
    fixed = _trainer(tmp_path, eval_every=3)
    fixed.iteration = 6
    assert fixed._evaluation_due()
    fixed.iteration = 7
    assert not fixed._evaluation_due()


def test_a_time_limit_stops_the_run_with_a_line_after_the_bar(tmp_path, capfd):
    argv = [*TINY_RL2[: TINY_RL2.index("--total-env-steps")], "--total-env-steps", "100000000",
            "--time-limit", "1", "--logdir", str(tmp_path)]
    code, err = run_command(train.main, argv, capfd)
    assert code == 0 and "time limit of 1 s reached" in err
    cfg = json.loads((only_run(tmp_path) / "config.json").read_text())
    assert cfg["run"]["time_limit"] == 1.0


def test_resume_takes_a_larger_budget_and_records_it(finished, tmp_path, capfd):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished[1], run)
    code, err = run_command(train.main, ["--resume", str(run)], capfd)
    assert code == 0 and f"--resume {run} --total-env-steps 320" in err  # finished: says how to go on
    code, err = run_command(train.main, ["--resume", str(run), "--total-env-steps", "320"], capfd)
    assert code == 0, err
    state = json.loads((run / "config.json").read_text())
    assert state["agent"]["total_env_steps"] == 320
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert report["num_tasks"] == 10
    from metarl.run.checkpoint import CHECKPOINT, load_checkpoint

    assert load_checkpoint(run / "checkpoints" / CHECKPOINT)["trainer"]["env_steps"] == 320


def test_resume_refuses_flags_that_change_the_run_and_changes_no_file(finished, capfd):
    run = finished[1]
    before = snapshot(run)
    for argv, message in [(["--lr", "0.1"], "--lr cannot change when resuming"),
                          (["--seed", "4"], "--seed cannot change when resuming"),
                          (["--algo", "maml"], "--algo, --env and --config do not apply")]:
        code, err = run_command(train.main, ["--resume", str(run), *argv], capfd)
        assert code == 2 and message in err, err
    assert "--config" in err
    assert snapshot(run) == before


def test_an_interrupt_names_the_resume_and_evaluate_commands_with_the_users_module(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"imports": [{"module": "line_goal", "file": "x.py"}]}))
    trainer = _trainer(tmp_path)
    assert trainer.import_flags() == " --import line_goal"
    (tmp_path / "config.json").write_text("{}")
    assert trainer.import_flags() == ""


def test_the_eta_counts_periodic_and_final_evaluation(tmp_path):
    from metarl.run.trainer import remaining_seconds

    assert remaining_seconds(0.0, 10.0, False, 0.05, None) is None
    # 40 s for a quarter: 120 s more at the same pace, evaluations in it, plus the final one (6 s)
    assert remaining_seconds(0.25, 40.0, True, 0.05, 6.0) == pytest.approx(126.0)
    # before the first periodic evaluation its share is added; there is no final estimate yet
    assert remaining_seconds(0.25, 40.0, False, 0.05, None) == pytest.approx(126.0)
    trainer = _trainer(tmp_path, eval_budget=0.1)
    trainer.agent.env_steps = 100  # a quarter of 400
    trainer.elapsed = 20.0
    assert trainer.remaining() == pytest.approx(60.0 * 1.1)
    trainer._eval_seconds = 3.0
    assert trainer.remaining() == pytest.approx(63.0)
    assert _trainer(tmp_path, eval_every=0).remaining() is None  # nothing done yet
