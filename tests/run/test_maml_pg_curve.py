"""experiments/maml_pg_curve.py: the learning-curve table read back from a run's events."""

import pytest

from metarl import train
from metarl.run.logger import read_scalars
from tests.helpers import load_experiment, only_run


def test_learning_curve_rows_average_their_window_of_iterations(tmp_path, capsys):
    module = load_experiment("maml_pg_curve")
    assert train.main(["--algo", "maml_pg", "--env", "metarl/Nav2D-v0", "--horizon", "5", "--iterations", "4",
                       "--meta-batch", "2", "--trajectories", "2", "--inner-steps", "2", "--hidden-sizes", "8",
                       "--eval-every", "0", "--eval-tasks", "2", "--eval-inner-steps", "1", "--no-progress",
                       "--no-compare", "--logdir", str(tmp_path)]) == 0
    run = only_run(tmp_path)
    capsys.readouterr()
    module.print_training_curve(run, rows=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| iterations | minutes | env steps (M) | step 0 | step 1 | step 2 | step 2 − step 0 |"
    rows = [line.strip("| ").split(" | ") for line in lines[2:]]
    assert [r[0] for r in rows] == ["1-2", "3-4"]
    tags = read_scalars(run)
    for j in range(3):
        values = [v for _, v in tags[f"adaptation/return_step_{j}"]]
        assert [float(r[3 + j]) for r in rows] == [round(sum(values[:2]) / 2, 2), round(sum(values[2:]) / 2, 2)]
    assert float(rows[1][6]) == pytest.approx(float(rows[1][5]) - float(rows[1][3]), abs=0.011)  # rounded means
    assert float(rows[1][2]) == round(tags["time/env_steps"][-1][1] / 1e6, 1)
