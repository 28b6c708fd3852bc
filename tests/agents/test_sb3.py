"""The SB3 baselines (``--algo ppo``, ``--algo sac``) through the same command line, evaluation,
run directory and TensorBoard layout as RL²: learning above random, the oracle's observation,
training from scratch on each held-out task, checkpoints, clear refusals."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import metarl
from metarl import evaluate, train
from metarl.agents.sb3 import PPOAgent, SB3Config
from metarl.envs.bandit import BanditTask
from tests.helpers import only_run, run_command

REPORT_KEYS = {"family", "algo", "split", "num_tasks", "x_name", "curve_name", "curve", "score_name", "score"}


def _train(tmp_path, capfd, *args):
    argv = [*args, "--no-progress", "--logdir", str(tmp_path)]
    code, err = run_command(train.main, argv, capfd)
    assert code == 0, err
    return only_run(tmp_path), err


def test_oracle_ppo_beats_random_on_a_two_armed_bandit_in_seconds(tmp_path, capfd):
    run, err = _train(tmp_path, capfd, "--algo", "ppo", "--env", "metarl/Bandit-v0", "--k", "2", "--n", "10",
                      "--mode", "oracle", "--total-env-steps", "8192", "--num-envs", "16", "--n-steps", "64",
                      "--eval-tasks", "200")
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert REPORT_KEYS <= set(report) and report["mode"] == "oracle"
    assert report["score_name"] == "total_return_per_trial" and report["x_name"] == "episode"
    random = json.loads((run / "eval" / "baselines.json").read_text())[0]
    assert random["algo"] == "random" and random["difference"] - random["difference_ci95"] > 0, random
    assert "ppo (trained)" in err


def test_the_oracle_observes_the_task_parameters():
    family = metarl.make_family("metarl/Bandit-v0", k=3, n=5)
    agent = PPOAgent(SB3Config(mode="oracle", num_envs=2, n_steps=8, batch_size=16), family)
    tasks = [BanditTask((0.1, 0.2, 0.3)), BanditTask((0.7, 0.8, 0.9))]
    agent.env.set_attr("task", tasks[0], indices=0)
    agent.env.set_attr("task", tasks[1], indices=1)
    obs = agent.env.reset()
    assert agent.model.observation_space.shape == (4,)
    np.testing.assert_allclose(obs[:, 1:], [t.probs for t in tasks], atol=1e-7)
    multitask = PPOAgent(SB3Config(num_envs=2, n_steps=8, batch_size=16), family)
    assert multitask.model.observation_space.shape == (1,)  # the task-agnostic policy sees no task


def test_scratch_mode_trains_on_each_held_out_task_and_its_curve_is_against_env_steps(tmp_path, capfd):
    run, _ = _train(tmp_path, capfd, "--algo", "sac", "--env", "metarl/Nav2D-v0", "--horizon", "10",
                    "--mode", "scratch", "--scratch-steps", "256", "--scratch-points", "2", "--scratch-tasks", "2",
                    "--num-envs", "8", "--learning-starts", "64", "--batch-size", "32", "--scratch-eval-trials", "2")
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert REPORT_KEYS <= set(report) and report["mode"] == "scratch"
    assert report["num_tasks"] == 2 and report["x_name"] == "env_steps"
    assert [p["x"] for p in report["curve"]] == [0, 128, 256]
    assert report["score"]["mean"] == report["curve"][-1]["mean"]
    baselines = json.loads((run / "eval" / "baselines.json").read_text())
    assert baselines[0]["algo"] == "random"  # paired on the same two tasks


def test_every_run_writes_its_config_and_final_metrics_for_the_hparams_tab(tmp_path, capfd):
    run, _ = _train(tmp_path, capfd, "--algo", "ppo", "--env", "metarl/Nav2D-v0", "--horizon", "10",
                    "--total-env-steps", "256", "--num-envs", "4", "--n-steps", "32", "--batch-size", "32",
                    "--eval-tasks", "10", "--no-compare")
    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
    start = content["_hparams_/session_start_info"]
    assert b"agent.mode" in start and b"family.horizon" in start and b"multitask" in start
    score = json.loads((run / "eval" / "final_test.json").read_text())["score"]["mean"]
    assert acc.Scalars("hparams/score")[-1].value == pytest.approx(score, rel=1e-5)
    assert acc.Scalars("hparams/env_steps")[-1].value == 256
    assert {"train/value_loss", "train/entropy_loss", "time/env_steps_per_second"} <= set(acc.Tags()["scalars"])


def test_a_checkpoint_restores_the_policy_and_evaluate_reads_the_run(tmp_path, capfd):
    run, _ = _train(tmp_path, capfd, "--algo", "ppo", "--env", "metarl/Bandit-v0", "--k", "2", "--n", "5",
                    "--total-env-steps", "160", "--num-envs", "4", "--n-steps", "8", "--batch-size", "16",
                    "--eval-tasks", "20", "--no-compare")
    reports = []
    for name in ("a.json", "b.json"):
        code, err = run_command(evaluate.main, [str(run), "--num-tasks", "20", "--json", str(tmp_path / name)], capfd)
        assert code == 0, err
        reports.append(json.loads((tmp_path / name).read_text()))
    assert reports[0] == reports[1] and REPORT_KEYS <= set(reports[0])  # evaluation depends on its seed alone
    family = metarl.make_family("metarl/Bandit-v0", k=2, n=5)
    config = SB3Config(total_env_steps=160, num_envs=4, n_steps=8, batch_size=16)
    a, b = PPOAgent(config, family, seed=0), PPOAgent(config, family, seed=1)
    a.train_iteration()
    b.load_state_dict(a.state_dict())
    for (name, p), q in zip(a.model.policy.state_dict().items(), b.model.policy.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert b.env_steps == a.env_steps == 32


@pytest.mark.parametrize(("args", "message"), [
    (["--algo", "sac", "--env", "metarl/Bandit-v0"], "SAC acts in continuous (Box) action spaces"),
    (["--algo", "ppo", "--mode", "scratch", "--recurrent"], "drop --recurrent"),
    (["--algo", "ppo", "--mode", "teacher"], "--mode"),
])
def test_bad_settings_are_refused_in_one_paragraph(tmp_path, capfd, args, message):
    code, err = run_command(train.main, [*args, "--logdir", str(tmp_path)], capfd)
    assert code == 2 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_recurrent_without_sb3_contrib_names_the_extra(tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import sb3_contrib now raises ImportError
    code, err = run_command(train.main, ["--algo", "ppo", "--recurrent", "--logdir", str(tmp_path)], capfd)
    assert code == 2 and 'pip install "metarl[baselines]"' in err


def test_recurrent_ppo_trains_over_trials_with_rl2_inputs(tmp_path, capfd):
    pytest.importorskip("sb3_contrib")
    run, _ = _train(tmp_path, capfd, "--algo", "ppo", "--recurrent", "--env", "metarl/Bandit-v0", "--k", "2",
                    "--n", "5", "--total-env-steps", "80", "--num-envs", "4", "--n-steps", "10", "--batch-size",
                    "20", "--lstm-hidden-size", "8", "--eval-tasks", "10", "--no-compare")
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert report["recurrent"] is True and len(report["curve"]) == 5
