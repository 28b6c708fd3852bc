"""``python -m metarl.plot``: several runs' curves in one figure, one band per run, grouped by algorithm."""

from __future__ import annotations

import json

from metarl import plot
from tests.helpers import run_command


def test_plot_draws_one_band_per_run_grouped_by_algorithm(tmp_path, capfd):
    reports = []
    for i, (algo, mode, x_name) in enumerate([("rl2", None, "episode"), ("ppo", "oracle", "episode"),
                                               ("ppo", "oracle", "episode"), ("ppo", "scratch", "env_steps")]):
        report = {"family": "metarl/Nav2D-v0", "algo": algo, "x_name": x_name, "curve_name": "return",
                  "curve": [{"x": x, "mean": -10.0 + x + i, "ci95": 1.0} for x in (1, 2)], "score_name": "s",
                  "score": {"mean": 0.0, "ci95": 1.0}, **({"mode": mode} if mode else {})}
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(report))
        reports.append(str(path))
    fig = plot.plot_runs(reports)
    bands = [len(ax.collections) for ax in fig.axes]
    assert bands == [3, 1]  # one panel per kind of curve, one band per run
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["rl2", "ppo (oracle)"]  # grouped: the two oracle runs share an entry
    out = tmp_path / "fig.png"
    code, err = run_command(plot.main, [*reports, "--out", str(out)], capfd)
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, err = run_command(plot.main, [str(tmp_path / "missing")], capfd)
    assert code == 2 and "no such file" in err


def test_a_run_directory_adds_its_learning_curve_from_tensorboard(tmp_path, capfd):
    from metarl import train
    from tests.helpers import only_run

    argv = ["--algo", "ppo", "--env", "metarl/Nav2D-v0", "--horizon", "10", "--total-env-steps", "384",
            "--num-envs", "4", "--n-steps", "32", "--batch-size", "32", "--eval-every", "1", "--eval-tasks", "10",
            "--no-compare", "--no-progress", "--logdir", str(tmp_path / "runs")]
    code, err = run_command(train.main, argv, capfd)
    assert code == 0, err
    run = only_run(tmp_path / "runs")
    fig = plot.plot_runs([run])
    assert [ax.get_xlabel() for ax in fig.axes] == ["episode", "training environment steps"]
    (line,) = fig.axes[1].get_lines()
    assert list(line.get_xdata()) == [128, 256, 384]  # two periodic evaluations and the final one
