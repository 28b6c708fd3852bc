"""Smoke tests of the train / evaluate / list CLIs with tiny budgets."""

import importlib
import importlib.metadata
import json
import subprocess
import sys

import pytest

from metarl import evaluate, train
from metarl.agents.rl2 import RL2Config
from metarl.core.errors import UsageError
from metarl.core.registry import MissingDependencyError, UnknownIdError, algo_spec, family_specs
from metarl.envs.bandit import BanditFamily
from metarl.run.config import recommended_settings
from metarl.run.logger import read_scalars
from tests.helpers import TINY_RL2, exits_2, only_run

TINY = TINY_RL2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    assert train.main([*TINY, "--logdir", str(logdir), "--seed", "3"]) == 0
    return only_run(logdir)


def test_train_writes_run_directory(tiny_run):
    assert tiny_run.name.startswith("metarl-Bandit-v0__rl2__s3__")
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["algo"] == "rl2" and cfg["env"] == "metarl/Bandit-v0"
    assert cfg["family"] == {"k": 2, "n": 5}
    assert cfg["agent"]["num_trials"] == 8 and cfg["run"]["seed"] == 3
    assert (tiny_run / "checkpoints" / "latest.pt").is_file()
    report = json.loads((tiny_run / "eval" / "final_test.json").read_text())
    for key in ("family", "algo", "split", "num_tasks", "curve", "score", "score_name"):
        assert key in report
    assert [p["x"] for p in report["curve"]] == [1, 2, 3, 4, 5]
    assert (tiny_run / "eval" / "final_test.png").stat().st_size > 1000


def test_family_recommendation_is_the_default_and_a_flag_overrides_it(tiny_run, tmp_path, capsys):
    assert BanditFamily.recommended["rl2"] == {"gae_lambda": 0.95}
    assert RL2Config().gae_lambda == 1.0  # so the run below shows the family's value, not the class's
    assert json.loads((tiny_run / "config.json").read_text())["agent"]["gae_lambda"] == 0.95
    assert train.main([*TINY, "--logdir", str(tmp_path / "a")]) == 0
    assert "metarl/Bandit-v0 recommends for rl2" in capsys.readouterr().err
    assert train.main([*TINY, "--logdir", str(tmp_path / "b"), "--gae-lambda", "1"]) == 0
    assert "recommends" not in capsys.readouterr().err
    assert json.loads((only_run(tmp_path / "b") / "config.json").read_text())["agent"]["gae_lambda"] == 1.0


def test_every_family_recommendation_names_settings_its_algorithm_has():
    checked = 0
    for spec in family_specs():
        try:
            family_cls = spec.load()
        except MissingDependencyError:
            continue
        for algo in family_cls.recommended:
            recommended_settings(family_cls, algo_spec(algo).load())  # raises on a stale key or value
            checked += 1
    assert checked >= 1


def test_event_files_hold_the_tag_scheme(tiny_run):
    tags = read_scalars(tiny_run)
    assert {f"adaptation/return_episode_{k}" for k in range(1, 6)} <= set(tags)
    assert {f"eval/return_episode_{k}" for k in range(1, 6)} <= set(tags)
    assert "eval/score" in tags and "train/policy_loss" in tags and "time/env_steps_per_second" in tags
    steps = [s for s, _ in tags["time/env_steps"]]
    assert steps == sorted(steps) and steps[-1] == 160


def test_config_file_reproduces_a_run(tiny_run, tmp_path):
    assert train.main(["--config", str(tiny_run / "config.json"), "--logdir", str(tmp_path), "--no-progress"]) == 0
    again = only_run(tmp_path)
    a = json.loads((tiny_run / "eval" / "final_test.json").read_text())
    b = json.loads((again / "eval" / "final_test.json").read_text())
    assert a["score"] == b["score"], "same seed and config must give the same result"


def test_evaluate_run_directory_and_split(tiny_run, tmp_path, capsys):
    out = tmp_path / "ood.json"
    assert evaluate.main([str(tiny_run), "--split", "ood", "--num-tasks", "20", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "ood" and report["num_tasks"] == 20
    assert out.with_suffix(".png").is_file()
    assert "total_return_per_trial" in capsys.readouterr().out


@pytest.mark.slow
def test_resumed_run_equals_a_straight_run(tmp_path):
    """Train 160 steps, extend the budget in config.json, resume to 240: same weights as 240 straight."""
    import torch

    straight = tmp_path / "a"
    assert train.main([*TINY, "--logdir", str(straight), "--total-env-steps", "240"]) == 0
    parted = tmp_path / "b"
    assert train.main([*TINY, "--logdir", str(parted), "--total-env-steps", "160"]) == 0
    run = only_run(parted)
    cfg = json.loads((run / "config.json").read_text())
    cfg["agent"]["total_env_steps"] = 240  # a user extends the budget by editing config.json
    (run / "config.json").write_text(json.dumps(cfg))
    assert train.main(["--resume", str(run)]) == 0
    steps = [s for s, _ in read_scalars(run)["time/env_steps"]]
    assert steps == [40, 80, 120, 160, 200, 240]
    a = torch.load(only_run(straight) / "checkpoints" / "latest.pt", weights_only=True)["agent"]["net"]
    b = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["agent"]["net"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    import signal
    import time

    cmd = [sys.executable, "-m", "metarl.train", *TINY, "--total-env-steps", "100000000", "--logdir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*/events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    run = only_run(tmp_path)
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert evaluate.main([str(run), "--num-tasks", "5"]) == 0


def test_time_limit_stops_training_with_a_checkpoint(tmp_path):
    assert train.main([*TINY, "--logdir", str(tmp_path), "--time-limit", "1e-9"]) == 0
    run = only_run(tmp_path)
    assert (run / "checkpoints" / "latest.pt").is_file() and (run / "eval" / "final_test.json").is_file()


def _exits_2(capsys, argv, message):
    exits_2(capsys, train.main, argv, message)


def test_bad_flag_values_say_which_and_why(tmp_path, capsys):
    _exits_2(capsys, [*TINY, "--k", "0", "--logdir", str(tmp_path)], "k (number of arms) must be >= 1, got 0")
    _exits_2(capsys, [*TINY, "--num-trials", "0", "--logdir", str(tmp_path)], "--num-trials must be > 0")
    _exits_2(capsys, [*TINY, "--not-a-flag", "1", "--logdir", str(tmp_path)], "--not-a-flag")
    _exits_2(capsys, [*TINY, "--cell", "rnn", "--logdir", str(tmp_path)], "rnn")
    assert not list(tmp_path.iterdir()), "a refused command must not create a run directory"


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(UnknownIdError, match="Did you mean 'metarl/Bandit-v0'"):
        train.main(["--algo", "rl2", "--env", "metarl/bandit-v0"])
    with pytest.raises(UnknownIdError, match="Did you mean 'rl2'"):
        train.main(["--algo", "rl"])
    with pytest.raises(UsageError, match="non-learning baseline"):
        train.main(["--algo", "random"])
    with pytest.raises(UsageError, match="no such file"):
        train.main(["--config", str(tmp_path / "nope.json")])
    with pytest.raises(Exception, match="no config.json"):
        train.main(["--resume", str(tmp_path)])
    with pytest.raises(UsageError, match="do not apply"):
        train.main(["--resume", str(tmp_path), "--env", "metarl/Bandit-v0"])


def test_corrupt_checkpoint_is_reported(tiny_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="unreadable or corrupt"):
        evaluate.main([str(broken), "--num-tasks", "5"])


def test_evaluate_baseline_without_run_directory(tmp_path):
    out = tmp_path / "random.json"
    assert evaluate.main(["--algo", "random", "--env", "metarl/Bandit-v0", "--k", "3", "--n", "20",
                          "--num-tasks", "500", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["algo"] == "random" and report["family_kwargs"] == {"k": 3, "n": 20}
    assert abs(report["score"]["mean"] - 10.0) < 3 * report["score"]["ci95"] + 0.5


@pytest.mark.slow
@pytest.mark.parametrize("module,args", [("metarl.train", ["--help"]), ("metarl.list", [])])
def test_modules_run_as_commands(module, args):
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if module == "metarl.list":
        assert "metarl/Bandit-v0" in proc.stdout and "rl2" in proc.stdout and "thompson" in proc.stdout
    else:
        assert "--total-env-steps" in proc.stdout and "--k" in proc.stdout


@pytest.mark.slow
def test_command_line_errors_exit_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "metarl.train", "--env", "metarl/Bandt-v0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Did you mean 'metarl/Bandit-v0'" in proc.stderr and "Traceback" not in proc.stderr


def test_console_scripts_handle_errors_as_python_m_does(monkeypatch, capsys):
    scripts = {ep.name: ep.value for ep in importlib.metadata.distribution("metarl").entry_points
               if ep.group == "console_scripts"}
    assert set(scripts) == {"metarl-train", "metarl-evaluate", "metarl-check", "metarl-list", "metarl-plot"}
    for target in scripts.values():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), target
    monkeypatch.setattr(sys, "argv", ["metarl-train", "--env", "metarl/Bandt-v0"])
    with pytest.raises(SystemExit) as exc:
        train.cli()
    assert exc.value.code == 2 and "Did you mean 'metarl/Bandit-v0'" in capsys.readouterr().err
