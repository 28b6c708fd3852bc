"""The domain-adaptation protocol end to end on tiny budgets: methods side by side on the
same tasks, one JSON and one PNG, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metarl import adaptation, evaluate, train
from metarl.core.errors import UsageError
from metarl.core.registry import algo_spec, family_specs, list_algos, make_family
from metarl.fewshot.evaluation import first_shots
from metarl.run.logger import read_scalars
from tests.helpers import TINY_RL2, exits_2, only_run


@pytest.fixture(scope="module")
def omniglot_runs(tiny_omniglot, tmp_path_factory):
    """A ProtoNets and a fine-tuning run of two updates each on the tiny synthetic Omniglot."""
    runs = {}
    for algo in ("protonet", "finetune"):
        logdir = tmp_path_factory.mktemp(algo)
        extra = ["--train-ways", "3"] if algo == "protonet" else ["--batch-size", "8"]
        assert train.main(["--algo", algo, "--env", "metarl/Omniglot-v0", "--data-root", str(tiny_omniglot),
                           "--ways", "3", "--queries", "2", "--iterations", "2", "--channels", "4", *extra,
                           "--eval-every", "0", "--eval-tasks", "4", "--no-progress", "--no-compare",
                           "--logdir", str(logdir)]) == 0
        runs[algo] = only_run(logdir)
    return runs


def test_shifted_omniglot_with_methods_beside(omniglot_runs, tmp_path):
    out = tmp_path / "rot.json"
    assert evaluate.main([str(omniglot_runs["protonet"]), "--split", "test", "--shift", "rotate:30", "--num-tasks", "6",
                          "--beside", str(omniglot_runs["finetune"]), "--scratch-tasks", "2", "--scratch-steps", "2",
                          "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = [m["name"] for m in report["methods"]]
    assert names == ["protonet", "finetune", "protonet + support BN", "finetune + support BN", "scratch",
                     "nearest_neighbour"]
    roles = {m["name"]: m["role"] for m in report["methods"]}
    assert roles["protonet"] == "meta-learned" and roles["finetune"] == "pretrained" and roles["scratch"] == "scratch"
    assert report["shift"] == ["rotate:30"] and report["example_task"]["shift"] == ["rotate:30.0"]
    assert all(m["x_name"] == "shots" for m in report["methods"])
    assert [m["num_tasks"] for m in report["methods"]] == [6, 6, 6, 6, 2, 6]
    assert report["score"] == report["methods"][0]["score"] and report["algo"] == "protonet"
    assert out.with_suffix(".png").stat().st_size > 5000


def test_target_family(omniglot_runs, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "digits.json"
    assert evaluate.main([str(omniglot_runs["protonet"]), "--target", "metarl/Digits-v0", "--ways", "4",
                          "--num-tasks", "4", "--no-baselines", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["family"] == "metarl/Digits-v0" and report["source_family"] == "metarl/Omniglot-v0"
    assert [m["name"] for m in report["methods"]] == ["protonet"]
    assert report["methods"][0]["curve"][0]["x"] == 1


def test_rl_ood_protocol(tmp_path):
    logdir = tmp_path / "runs"
    assert train.main([*TINY_RL2, "--logdir", str(logdir)]) == 0
    out = tmp_path / "ood.json"
    assert evaluate.main([str(only_run(logdir)), "--split", "ood", "--num-tasks", "6", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    methods = {m["name"]: m for m in report["methods"]}
    assert set(methods) == {"rl2", "scratch", "random", "ucb1", "thompson"}
    assert [p["x"] for p in methods["rl2"]["curve"]] == [0, 1, 2, 3, 4]  # episodes seen before each episode
    steps = methods["scratch"]["curve"]
    assert [p["x"] for p in steps] == [0, 20, 40, 60]  # MAML-PG: 3 inner steps of 20 episodes each
    assert report["split"] == "ood" and report["num_tasks"] == 6


def test_protocol_errors(omniglot_runs, capsys):
    run = str(omniglot_runs["protonet"])
    with pytest.raises(ValueError, match=r"has no shift 'mass'.*rotate"):
        evaluate.main([run, "--shift", "mass:2", "--num-tasks", "2"])
    with pytest.raises(UsageError, match="--target applies to supervised families"):
        evaluate.main([run, "--target", "metarl/Nav2D-v0", "--num-tasks", "2"])
    exits_2(capsys, evaluate.main, [run, "--shift", "rotate:x"], "'x' is not a number or a range low..high")
    with pytest.raises(UsageError, match="give RUN_DIR"):
        evaluate.main(["--algo", "random", "--env", "metarl/Bandit-v0", "--beside", run])


def test_training_logs_out_of_distribution_evaluations(tmp_path):
    assert train.main([*TINY_RL2, "--logdir", str(tmp_path), "--eval-shift", "prior:0.5"]) == 0
    run = only_run(tmp_path)
    tags = read_scalars(run)
    assert {"eval/score", "eval_ood/score", "eval_ood/return_episode_1"} <= set(tags)
    assert len(tags["eval_ood/score"]) == len(tags["eval/score"])
    report = json.loads((run / "eval" / "final_ood.json").read_text())
    assert report["split"] == "test" and report["shift"] == ["prior:0.5"]


SUPERVISED = [a.name for a in list_algos() if a.kind == "supervised"]


@pytest.mark.parametrize("algo", SUPERVISED)
def test_every_supervised_agent_runs_the_protocol(algo, tiny_omniglot):
    assert len(SUPERVISED) >= 6
    family = make_family("metarl/Omniglot-v0", data_root=str(tiny_omniglot), ways=3, queries=2)
    cls = algo_spec(algo).load()
    agent = cls(cls.config_class(), family, seed=0)
    tasks = family.sample_tasks(3, "ood", shift=("blur:1", "invert"))
    result = adaptation.data_curve(adaptation.Method(algo, "meta-learned", agent), family, tasks, seed=0)
    assert result.x_name == "shots" and result.x == [1, 2, 5] and result.curve.shape == (3, 3)  # 6 drawings a class
    assert np.all((0 <= result.curve) & (result.curve <= 1))


@pytest.mark.parametrize("env_id", [s.id for s in family_specs() if s.kind == "rl" and s.available])
def test_every_rl_family_runs_the_protocol(env_id):
    family = make_family(env_id)
    if env_id.startswith("metarl/ML"):
        pytest.skip("Meta-World's evaluation costs minutes; its ood split is tested in test_metaworld.py")
    agent = algo_spec("random").load()(algo_spec("random").load().config_class(), family, seed=0)
    shift = tuple(f"{name}:1" for name in list(family.shifts)[:1] if name not in family.valueless_shifts)
    tasks = family.sample_tasks(2, "ood", shift=shift)
    result = adaptation.data_curve(adaptation.Method("random", "baseline", agent), family, tasks, seed=0)
    assert result.x_name == "episodes_seen" and result.x[0] == 0 and result.curve.shape[0] == 2


def test_a_bad_eval_shift_fails_before_training(tmp_path):
    with pytest.raises(UsageError, match="--eval-shift on metarl/Bandit-v0: BanditFamily has no shift 'mass'; its "
                                         "shifts: prior"):
        train.main([*TINY_RL2, "--logdir", str(tmp_path), "--eval-shift", "mass:2"])
    assert not list(tmp_path.iterdir())


def test_support_statistics_adapt_and_restore_batch_norm(tiny_omniglot):
    family = make_family("metarl/Omniglot-v0", data_root=str(tiny_omniglot), ways=3, queries=2)
    cls = algo_spec("protonet").load()
    agent = cls(cls.config_class(channels=4), family, seed=0)
    norms = agent.norm_layers()
    assert norms
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    tasks = family.sample_tasks(4, "test", shift=("invert",))
    episode = family.sample_episodes(tasks, 2, 2, np.random.default_rng(0))
    plain = agent.classify_shots(episode, [1, 2])
    agent.support_statistics = True
    adapted = agent.classify_shots(episode, [1, 2])
    agent.support_statistics = False
    assert adapted.shape == plain.shape == (2, 4, 6)
    for m, state in zip(norms, before, strict=True):
        assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    # One task by hand: statistics of its 1-shot support, then the prototypes' nearest class.
    pos = first_shots(episode.support_y[:1], 3, 1)[0]
    support = episode.support_x[0][pos]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        agent.features(support)
        for m in norms:
            m.eval()
        expected = agent.predict(agent.features(support)[None], episode.support_y[:1, pos],
                                 agent.features(episode.query_x[0])[None], 3)[0]
    assert torch.equal(adapted[0, 0], expected)
