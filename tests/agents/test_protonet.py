"""ProtoNets, the fine-tuning and nearest-neighbour baselines: the prototype math against
hand computation, smoke training on a tiny synthetic Omniglot (beats chance), exact resume,
and the train / evaluate / one-shot benchmark CLIs with tiny budgets."""

from __future__ import annotations

import json

import pytest
import torch

from metarl import evaluate, train
from metarl.agents.finetune import Finetune, FinetuneConfig
from metarl.agents.nearest_neighbour import NearestNeighbour, NearestNeighbourConfig
from metarl.agents.protonet import ProtoNet, ProtoNetConfig
from metarl.core.errors import UsageError
from metarl.envs import omniglot_oneshot as oneshot
from metarl.envs.omniglot import OmniglotFamily
from metarl.fewshot.episode import Episode
from metarl.fewshot.losses import prototypes, squared_distances
from metarl.run.logger import read_scalars
from tests.helpers import write_synthetic_runs

TINY_FAMILY = {"queries": 2, "image_size": 16}


def family(root) -> OmniglotFamily:
    return OmniglotFamily(data_root=str(root), **TINY_FAMILY)


def test_prototypes_are_class_means_and_queries_go_to_the_nearest():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [0.0, 4.0], [12.0, 8.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 0, 1, 2])
    protos = prototypes(z, y, 3)
    expected = torch.tensor([[(0 + 2 + 0) / 3, (0 + 0 + 4) / 3], [11.0, 9.0], [1.0, 1.0]])
    torch.testing.assert_close(protos, expected)
    q = torch.tensor([[1.0, 1.5], [10.0, 9.0]])
    d = squared_distances(q, protos)
    hand = torch.tensor([[(1 - 2 / 3) ** 2 + (1.5 - 4 / 3) ** 2, 100.0 + 56.25, 0.25],
                         [(10 - 2 / 3) ** 2 + (9 - 4 / 3) ** 2, 1.0, 81.0 + 64.0]])
    torch.testing.assert_close(d, hand)
    # Batched, with the ProtoNet's decision rule (eq. 2: nearest prototype).
    agent = ProtoNet.__new__(ProtoNet)
    pred = ProtoNet.predict(agent, z[None], y[None], q[None], 3)
    assert pred.tolist() == [[0, 1]]  # 0.139 < 0.25 for the first query, 1.0 for the second


def _train(agent, iterations):
    stats = None
    for _ in range(iterations):
        stats = agent.train_iteration()
    return stats


def test_protonet_smoke_training_beats_chance(tiny_omniglot):
    f = family(tiny_omniglot)
    agent = ProtoNet(ProtoNetConfig(iterations=25, train_ways=10, train_queries=2, channels=16, curve_every=25,
                                    curve_tasks=8), f, seed=0)
    stats = _train(agent, 25)
    assert stats.curve is not None and stats.curve.x_name == "shots", "a training-task curve every curve_every"
    assert {"train/loss", "train/accuracy"} <= set(stats.scalars)
    result = agent.evaluate(f.sample_tasks(40, "test"), seed=1)
    assert result.x == [1, 2, 5] and result.curve_name == "query_accuracy"
    assert result.score_name == "query_accuracy_shots_1"
    assert result.scores.mean() > 0.2 + 0.25, f"5-way accuracy {result.scores.mean():.2f} is near chance (0.2)"


def test_finetune_smoke_training_beats_chance(tiny_omniglot):
    f = family(tiny_omniglot)
    agent = Finetune(FinetuneConfig(iterations=40, batch_size=32, channels=16, finetune_steps=30, curve_every=0), f)
    _train(agent, 40)
    result = agent.evaluate(f.sample_tasks(40, "test"), seed=1)
    assert result.scores.mean() > 0.2 + 0.25, f"5-way accuracy {result.scores.mean():.2f} is near chance (0.2)"


def test_nearest_neighbour_beats_chance_and_refuses_regression(tiny_omniglot):
    f = family(tiny_omniglot)
    agent = NearestNeighbour(NearestNeighbourConfig(), f)
    assert agent.evaluate(f.sample_tasks(40, "test"), seed=1).scores.mean() > 0.35
    # 1-NN over individual shots, not class means: a query equal to a support example takes its label.
    sx = torch.rand(6, 1, 4, 4)
    ep = Episode(sx, torch.tensor([0, 1, 2, 0, 1, 2]), sx[[4, 0]], torch.tensor([1, 0]))
    assert agent.classify(ep).tolist() == [1, 0]


def test_protonet_resume_equals_a_straight_run(tiny_omniglot):
    f = family(tiny_omniglot)
    cfg = ProtoNetConfig(iterations=6, train_ways=5, train_queries=2, channels=8, curve_every=0)
    straight = ProtoNet(cfg, f, seed=3)
    _train(straight, 6)
    first = ProtoNet(cfg, f, seed=3)
    _train(first, 4)
    state = first.state_dict()
    resumed = ProtoNet(cfg, f, seed=3)
    resumed.load_state_dict(state)
    _train(resumed, 2)
    for key, value in straight.state_dict()["net"].items():
        torch.testing.assert_close(value, resumed.state_dict()["net"][key], rtol=0, atol=0)


def test_classify_handles_a_20_way_episode_with_a_5_way_family(tiny_omniglot, oneshot_runs):
    agent = ProtoNet(ProtoNetConfig(channels=8), family(tiny_omniglot))
    twenty = write_synthetic_runs(oneshot_runs.parent / "twenty", runs=1, ways=20, canvas=40)
    run = oneshot.load_runs(twenty, image_size=16)[0]
    pred = agent.classify(run.episode)
    assert pred.shape == (20,) and pred.max() < 20


def test_cli_train_evaluate_and_benchmark(tiny_omniglot, oneshot_runs, tmp_path, capsys):
    flags = ["--algo", "protonet", "--env", "metarl/Omniglot-v0", "--data-root", str(tiny_omniglot), "--queries", "2",
             "--image-size", "16", "--iterations", "6", "--train-ways", "5", "--train-queries", "2",
             "--channels", "8", "--eval-tasks", "10", "--eval-every", "3", "--curve-every", "3", "--curve-tasks", "4",
             "--logdir", str(tmp_path), "--no-progress"]
    assert train.main(flags) == 0
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("metarl-Omniglot-v0__protonet__s0__")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"]["data_root"] == str(tiny_omniglot) and cfg["agent"]["train_ways"] == 5
    report = json.loads((run / "eval" / "final_test.json").read_text())
    assert report["score_name"] == "query_accuracy_shots_1" and [p["x"] for p in report["curve"]] == [1, 2, 5]
    tags = read_scalars(run)
    assert {"train/loss", "train/accuracy", "eval/query_accuracy_shots_1", "adaptation/query_accuracy_shots_2"} <= set(tags)
    out = tmp_path / "ood.json"
    assert evaluate.main([str(run), "--split", "ood", "--num-tasks", "8", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["split"] == "ood"
    assert evaluate.main([str(run), "--benchmark", "omniglot-oneshot", "--data-root", str(oneshot_runs)]) == 0
    bench = json.loads((run / "eval" / "omniglot-oneshot.json").read_text())
    assert bench["num_runs"] == 3 and len(bench["runs"]) == 3 and 0 <= bench["error_rate"]["mean"] <= 1
    assert "run01:" in capsys.readouterr().out
    with pytest.raises(UsageError, match="needs --data-root"):
        evaluate.main([str(run), "--benchmark", "omniglot-oneshot"])
    with pytest.raises(UsageError, match="no one-shot runs"):
        evaluate.main([str(run), "--benchmark", "omniglot-oneshot", "--data-root", str(tmp_path / "nowhere")])


def test_cli_baselines(tiny_omniglot, oneshot_runs, tmp_path):
    out = tmp_path / "nn.json"
    assert evaluate.main(["--algo", "nearest_neighbour", "--env", "metarl/Omniglot-v0", "--data-root", str(tiny_omniglot),
                          "--queries", "2", "--image-size", "16", "--num-tasks", "20", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["algo"] == "nearest_neighbour" and report["num_tasks"] == 20
    bench = tmp_path / "nn_bench.json"
    assert evaluate.main(["--algo", "nearest_neighbour", "--benchmark", "omniglot-oneshot", "--data-root",
                          str(oneshot_runs), "--json", str(bench)]) == 0
    assert json.loads(bench.read_text())["num_runs"] == 3
    ft = ["--algo", "finetune", "--env", "metarl/Omniglot-v0", "--data-root", str(tiny_omniglot), "--queries", "2",
          "--image-size", "16", "--iterations", "4", "--batch-size", "16", "--channels", "8", "--finetune-steps", "5",
          "--eval-tasks", "5", "--eval-every", "0", "--curve-every", "0", "--logdir", str(tmp_path / "ft"),
          "--no-progress"]
    assert train.main(ft) == 0
    (run,) = (tmp_path / "ft").iterdir()
    assert evaluate.main([str(run), "--num-tasks", "5"]) == 0
    with pytest.raises(UsageError, match="non-learning baseline"):
        train.main(["--algo", "nearest_neighbour", "--env", "metarl/Omniglot-v0"])


def test_missing_data_is_a_usage_error_before_training(tmp_path):
    with pytest.raises(Exception, match="images_background_small1.zip"):
        train.main(["--algo", "protonet", "--data-root", str(tmp_path), "--logdir", str(tmp_path / "runs"),
                    "--no-progress", "--iterations", "1"])


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="--train-ways must be >= 0"):
        ProtoNetConfig(train_ways=-1)
    with pytest.raises(ValueError, match="--finetune-steps must be > 0"):
        FinetuneConfig(finetune_steps=0)
    with pytest.raises(ValueError, match="--eval-shots"):
        NearestNeighbourConfig(eval_shots=())


def test_amp_trains_the_metric_learner_in_bfloat16_and_beats_chance(tiny_omniglot, tmp_path):
    f = family(tiny_omniglot)
    agent = ProtoNet(ProtoNetConfig(iterations=25, train_ways=10, train_queries=2, channels=16, curve_every=0), f, seed=0)
    seen: list[torch.dtype] = []
    agent.net.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the trainer wraps iterations in with --amp
        _train(agent, 25)
    assert seen and all(d == torch.bfloat16 for d in seen), "the embedding ran in bfloat16"
    assert all(p.dtype == torch.float32 for p in agent.net.parameters()), "the weights stay float32"
    result = agent.evaluate(f.sample_tasks(40, "test"), seed=1)
    assert result.scores.mean() > 0.2 + 0.25, f"5-way accuracy {result.scores.mean():.2f} is near chance (0.2)"
    code = train.main(["--algo", "protonet", "--data-root", str(tiny_omniglot), "--image-size", "16", "--queries", "2",
                       "--iterations", "3", "--channels", "8", "--amp", "--eval-tasks", "4", "--no-compare",
                       "--no-progress", "--logdir", str(tmp_path / "runs")])
    assert code == 0
    config = json.loads(next((tmp_path / "runs").iterdir()).joinpath("config.json").read_text())
    assert config["run"]["amp"] is True


def test_amp_is_refused_where_unsafe_with_the_reason(tmp_path):
    with pytest.raises(UsageError, match="--amp with --algo rl2: PPO's ratio"):
        train.main(["--algo", "rl2", "--amp", "--logdir", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()
