"""Bad input at the command line: every case is refused with one paragraph that names what is
wrong (exit status 2, no traceback) and leaves every file as it was; nothing named in a file
is ever imported.

Each case is ``(command, arguments, message)``; arguments may name ``{tmp}`` (the case's own
folder, also the working directory), ``{runs}`` (the run folder a refused command must not
create), ``{run}`` (a copy of a trained RL² run) and ``{maml}`` (a copy of a trained MAML run).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from metarl import evaluate, train
from metarl.run.checkpoint import CHECKPOINT
from tests.helpers import TINY_RL2, only_run, run_command, snapshot

TRAIN = [*TINY_RL2, "--logdir", "{runs}"]


def _config(**sections) -> str:
    """A ``--config`` file's text: a TINY_RL2 run's layout with ``sections`` replaced."""
    base = {"algo": "rl2", "env": "metarl/Bandit-v0", "family": {"k": 2, "n": 5},
            "agent": {"num_trials": 8, "total_env_steps": 160}, "run": {"eval_tasks": 10, "progress": False}}
    return json.dumps({**base, **sections})


CONFIG_FILES = {
    "bad_json.json": "{not json",
    "extra_key.json": json.dumps({"algo": "rl2", "surprise": 1}),
    "cell_rnn.json": _config(agent={"cell": "rnn"}),
    "seed_string.json": _config(run={"seed": "7"}),
    "device_tpu.json": _config(run={"device": "tpu"}),
    "k_float.json": _config(family={"k": 2.5}),
    "unknown_agent_key.json": _config(agent={"foo": 1}),
    "env_not_string.json": _config(env=5),
    "env_module.json": _config(env="plantedmodule:mine/Planted-v0"),
    "user_family.json": _config(env="mine/Two-v0", imports=[{"module": "mine_families", "file": "/x/mine_families.py"}]),
    "agent_list.json": _config(agent=[1, 2]),
    "nan_lr.json": _config(agent={"lr": float("nan")}),  # Python's json writes (and reads) NaN
    "hidden_string.json": _config(agent={"hidden_size": "64"}),
    "negative_eval.json": _config(run={"eval_every": -3}),
}

TRAIN_CASES = [
    ("seed negative", [*TRAIN, "--seed", "-1"], "--seed must lie in [0, 2**63), got -1"),
    ("seed huge", [*TRAIN, "--seed", "1e23"], "Error parsing --seed"),
    ("seed fraction", [*TRAIN, "--seed", "7.5"], "Error parsing --seed"),
    ("lr nan", [*TRAIN, "--lr", "nan"], "--lr must be a finite number, got nan"),
    ("lr inf", [*TRAIN, "--lr", "inf"], "--lr must be a finite number, got inf"),
    ("lr zero", [*TRAIN, "--lr", "0"], "--lr must be > 0, got 0"),
    ("lr negative", [*TRAIN, "--lr", "-1"], "--lr must be > 0, got -1"),
    ("time limit nan", [*TRAIN, "--time-limit", "nan"], "--time-limit must be a finite number"),
    ("time limit negative", [*TRAIN, "--time-limit", "-1"], "--time-limit must be >= 0"),
    ("checkpoint every nan", [*TRAIN, "--checkpoint-every", "nan"], "--checkpoint-every must be a finite number"),
    ("device", [*TRAIN, "--device", "tpu"], "tpu"),
    ("threads", [*TRAIN, "--threads", "0"], "--threads must be >= 1, got 0"),
    ("eval tasks zero", [*TRAIN, "--eval-tasks", "0"], "--eval-tasks must be >= 1, got 0"),
    ("eval tasks huge", [*TRAIN, "--eval-tasks", "1000000000"], "more than the 1,000,000 tasks"),
    ("eval every", [*TRAIN, "--eval-every", "-1"], "--eval-every must be >= 0"),
    ("num trials zero", [*TRAIN, "--num-trials", "0"], "--num-trials must be > 0, got 0"),
    ("num trials huge", [*TRAIN, "--num-trials", "1000000000"], "--num-trials 1000000000 (trials of 5 steps) would hold about"),
    ("clip", [*TRAIN, "--clip", "-1"], "--clip must be > 0, got -1"),
    ("entropy coef", [*TRAIN, "--entropy-coef", "-5"], "--entropy-coef must be >= 0, got -5"),
    ("max grad norm", [*TRAIN, "--max-grad-norm", "-1"], "--max-grad-norm must be >= 0, got -1"),
    ("gamma", [*TRAIN, "--gamma", "1.5"], "--gamma and --gae-lambda must lie in [0, 1]"),
    ("cell", [*TRAIN, "--cell", "rnn"], "rnn"),
    ("minibatches", [*TRAIN, "--minibatches", "100"], "--minibatches (100) cannot exceed --num-trials (8)"),
    ("family k zero", [*TRAIN, "--k", "0"], "k (number of arms) must be >= 1, got 0"),
    ("family k fraction", [*TRAIN, "--k", "2.5"], "Error parsing --k"),
    ("family n inf", [*TRAIN, "--n", "inf"], "Error parsing --n"),
    ("unknown flag", [*TRAIN, "--not-a-flag", "1"], "--not-a-flag"),
    ("unknown algo", ["--algo", "rl3", "--logdir", "{runs}"], "unknown algorithm 'rl3'. Did you mean 'rl2'"),
    ("unknown env", ["--env", "metarl/Bandt-v0", "--logdir", "{runs}"], "Did you mean 'metarl/Bandit-v0'"),
    ("baseline", ["--algo", "random", "--logdir", "{runs}"], "random is a non-learning baseline"),
    ("config missing", ["--config", "{tmp}/nope.json"], "no such file"),
    ("config not json", ["--config", "{tmp}/bad_json.json"], "is not valid JSON"),
    ("config extra key", ["--config", "{tmp}/extra_key.json"], "expected a JSON object with keys among"),
    ("config literal", ["--config", "{tmp}/cell_rnn.json", "--logdir", "{runs}"],
     "cell in the agent section of --config must be one of 'gru', 'lstm', 'transformer', got 'rnn'"),
    ("config int as string", ["--config", "{tmp}/seed_string.json", "--logdir", "{runs}"],
     "seed in the run section of --config must be an integer, got '7'"),
    ("config device", ["--config", "{tmp}/device_tpu.json", "--logdir", "{runs}"],
     "device in the run section of --config must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
    ("config family type", ["--config", "{tmp}/k_float.json", "--logdir", "{runs}"],
     "k in arguments of metarl/Bandit-v0 must be an integer, got 2.5"),
    ("config unknown key", ["--config", "{tmp}/unknown_agent_key.json", "--logdir", "{runs}"], "unknown key(s) ['foo']"),
    ("config env type", ["--config", "{tmp}/env_not_string.json"], "'env' must be a string, got 5"),
    ("config env module", ["--config", "{tmp}/env_module.json", "--logdir", "{runs}"],
     "from 'plantedmodule', which is not imported: add --import plantedmodule"),
    ("config user family", ["--config", "{tmp}/user_family.json", "--logdir", "{runs}"],
     "uses family mine/Two-v0 from 'mine_families', which is not imported: add --import mine_families"),
    ("config section type", ["--config", "{tmp}/agent_list.json", "--logdir", "{runs}"],
     "the agent section of --config must be a JSON object of settings, got list"),
    ("config nan", ["--config", "{tmp}/nan_lr.json", "--logdir", "{runs}"],
     "lr in the agent section of --config must be a finite number, got nan"),
    ("config size as string", ["--config", "{tmp}/hidden_string.json", "--logdir", "{runs}"],
     "hidden_size in the agent section of --config must be an integer, got '64'"),
    ("config negative", ["--config", "{tmp}/negative_eval.json", "--logdir", "{runs}"], "--eval-every must be >= 0, got -3"),
    ("resume missing", ["--resume", "{tmp}/nowhere"], "has no config.json: expected a run directory"),
    ("resume changing the seed", ["--resume", "{run}", "--seed", "1"], "--seed cannot change when resuming"),
    ("resume with --algo", ["--resume", "{run}", "--algo", "maml"], "--algo, --env and --config do not apply"),
    ("resume with a bad budget", ["--resume", "{run}", "--total-env-steps", "0"], "--total-env-steps must be > 0"),
    ("logdir unwritable", [*TINY_RL2, "--logdir", "/proc/metarl-runs"], "--logdir /proc/metarl-runs: cannot create run directories"),
    ("data missing", ["--algo", "protonet", "--env", "metarl/Omniglot-v0", "--data-root", "{tmp}/no-data",
                      "--logdir", "{runs}"], "Omniglot set 'small1' not found"),
    ("module missing", ["--env", "nosuchmodule:x/Y-v0", "--logdir", "{runs}"], "cannot import 'nosuchmodule'"),
    ("import missing", ["--import", "nosuchmodule", *TRAIN], "cannot import 'nosuchmodule'"),
    ("wrong kind", ["--algo", "siamese", "--env", "metarl/Sinusoid-v0", "--logdir", "{runs}"],
     "siamese classifies, but SinusoidFamily is a regression family"),
    ("missing extra", ["--env", "metarl/ML1-v0", "--logdir", "{runs}"], 'pip install "metarl[metaworld]"'),
]

EVAL_CASES = [
    ("no run", ["{tmp}/nowhere"], "has no config.json: expected a run directory"),
    ("nothing", [], "give a run directory (RUN_DIR) or a baseline with --algo NAME --env ID"),
    ("run and algo", ["{run}", "--algo", "rl2"], "give either RUN_DIR or --algo/--env, not both"),
    ("learner without run", ["--algo", "rl2"], "rl2 learns: train it with python -m metarl.train"),
    ("inner steps on rl2", ["{run}", "--inner-steps", "2"], "--inner-steps applies to gradient-based agents"),
    ("inner steps negative", ["{maml}", "--inner-steps", "-1"], "--inner-steps must lie in [0, 1000], got -1"),
    ("num tasks zero", ["{run}", "--num-tasks", "0"], "--num-tasks must be >= 1, got 0"),
    ("num tasks huge", ["{run}", "--num-tasks", "10000000"], "more than the 1,000,000 tasks"),
    ("split", ["{run}", "--split", "val"], "val"),
    ("seed", ["{run}", "--seed", "-3"], "--seed must lie in [0, 2**63), got -3"),
    ("bandit baseline elsewhere", ["--algo", "thompson", "--env", "metarl/TabularMDP-v0"],
     "only on Bernoulli bandit families"),
    ("psrl elsewhere", ["--algo", "psrl", "--env", "metarl/Bandit-v0"], "psrl needs a tabular MDP family"),
    ("benchmark on rl2", ["{run}", "--benchmark", "omniglot-oneshot", "--data-root", "{tmp}"],
     "--benchmark omniglot-oneshot scores few-shot classifiers; rl2 is not one"),
    ("benchmark data", ["--algo", "nearest_neighbour", "--env", "metarl/Omniglot-v0", "--benchmark", "omniglot-oneshot",
                        "--data-root", "{tmp}/no-runs"], "no one-shot runs under"),
    ("random init baseline", ["--algo", "random", "--env", "metarl/Bandit-v0", "--init", "random"],
     "--init random evaluates a run's agent freshly initialised: give RUN_DIR"),
    ("import missing", ["{run}", "--import", "nosuchmodule"], "cannot import 'nosuchmodule'"),
]


def _damage(name: str, run: Path, maml: Path) -> None:
    """Break a copied run directory the way the case says."""
    ckpt = run / "checkpoints" / CHECKPOINT
    cfg_file = run / "config.json"
    if name == "corrupt checkpoint":
        ckpt.write_bytes(b"not a checkpoint")
    elif name == "missing checkpoint":
        ckpt.unlink()
    elif name == "another algorithm":
        shutil.copy(maml / "checkpoints" / CHECKPOINT, ckpt)
    elif name == "old checkpoint of another agent":
        state = torch.load(maml / "checkpoints" / CHECKPOINT, weights_only=True)
        state.pop("algo")
        torch.save(state, ckpt)
    elif name == "diverged":
        state = torch.load(ckpt, weights_only=True)
        state["agent"]["net"]["pi.weight"][0, 0] = float("nan")
        torch.save(state, ckpt)
    elif name == "config corrupt":
        cfg_file.write_text("{")
    else:
        cfg = json.loads(cfg_file.read_text())
        if name == "config user family":
            cfg.update(env="mine/Two-v0", imports=[{"module": "mine_families", "file": "/x/mine_families.py"}])
        elif name == "config agent key":
            cfg["agent"]["warp_drive"] = True
        elif name == "config family value":
            cfg["family"]["k"] = 0
        cfg_file.write_text(json.dumps(cfg))


RUN_DAMAGE = [
    ("corrupt checkpoint", "is unreadable or corrupt"),
    ("missing checkpoint", "no checkpoint at"),
    ("another algorithm", "holds a maml agent, not a rl2 one"),
    ("old checkpoint of another agent", "does not fit a rl2 agent of this run's config.json"),
    ("diverged", "holds non-finite values (net.pi.weight): the run diverged"),
    ("config corrupt", "is not valid JSON"),
    ("config user family", "uses family mine/Two-v0 from 'mine_families', which is not imported: add --import "
                           "mine_families (metarl never imports a module named in a file); mine_families was "
                           "/x/mine_families.py"),
    ("config agent key", "unknown key(s) ['warp_drive'] in the agent section of"),
    ("config family value", "k (number of arms) must be >= 1, got 0"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny RL² run and a tiny MAML run, trained once."""
    root = tmp_path_factory.mktemp("trained")
    assert train.main([*TINY_RL2, "--logdir", str(root / "rl2")]) == 0
    assert train.main(["--algo", "maml", "--env", "metarl/Sinusoid-v0", "--iterations", "3", "--eval-tasks", "5",
                       "--no-progress", "--logdir", str(root / "maml")]) == 0
    return {"run": only_run(root / "rl2"), "maml": only_run(root / "maml")}


@pytest.fixture
def case_dir(tmp_path, trained, monkeypatch):
    """The case's folder (the working directory, on ``sys.path`` as the current directory is for
    ``python -m``) with the config files, a planted module, and copies of the trained runs."""
    for name, text in CONFIG_FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "plantedmodule.py").write_text("import pathlib\npathlib.Path('IMPORTED').write_text('ran')\n")
    for key, run in trained.items():
        shutil.copytree(run, tmp_path / key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _fill(args: list[str], tmp: Path) -> list[str]:
    return [a.format(tmp=tmp, runs=tmp / "runs", run=tmp / "run", maml=tmp / "maml") for a in args]


def _refused(main, args: list[str], message: str, case_dir: Path, capfd) -> None:
    before = snapshot(case_dir)
    code, err = run_command(main, _fill(args, case_dir), capfd)
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err
    assert snapshot(case_dir) == before, "a refused command changed files"
    assert not (case_dir / "IMPORTED").exists(), "a module named in a file was imported"


@pytest.mark.parametrize("name,args,message", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses(name, args, message, case_dir, capfd):
    _refused(train.main, args, message, case_dir, capfd)


@pytest.mark.parametrize("name,args,message", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_evaluate_refuses(name, args, message, case_dir, capfd):
    _refused(evaluate.main, args, message, case_dir, capfd)


@pytest.mark.parametrize("name,message", RUN_DAMAGE, ids=[c[0] for c in RUN_DAMAGE])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_damaged_run_directory_is_refused(name, message, command, case_dir, capfd):
    _damage(name, case_dir / "run", case_dir / "maml")
    args = ["{run}", "--num-tasks", "5"] if command == "evaluate" else ["--resume", "{run}"]
    _refused(evaluate.main if command == "evaluate" else train.main, args, message, case_dir, capfd)


@pytest.mark.parametrize("env", ["plantedmodule:metarl/Bandit-v0", "this:metarl/Bandit-v0"])
def test_a_module_named_in_a_run_directory_is_never_imported(env, case_dir, capfd):
    cfg_file = case_dir / "run" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["env"] = env  # an older config.json's form, or a hostile one
    cfg_file.write_text(json.dumps(cfg))
    code, err = run_command(evaluate.main, [str(case_dir / "run"), "--num-tasks", "5"], capfd)
    out = capfd.readouterr().out
    assert code == 0, err
    assert not (case_dir / "IMPORTED").exists() and "Beautiful is better than ugly" not in out + err


def test_a_module_named_on_the_command_line_is_imported_and_recorded(case_dir, capfd):
    code, err = run_command(train.main, [*_fill(TRAIN, case_dir), "--import", "plantedmodule"], capfd)
    assert code == 0, err
    assert (case_dir / "IMPORTED").exists()
    cfg = json.loads((only_run(case_dir / "runs") / "config.json").read_text())
    assert cfg["imports"] == [{"module": "plantedmodule", "file": str(case_dir / "plantedmodule.py")}]

