"""experiments/rl2_ablation.py: the --quick sweep trains, scores and tabulates through the library."""

import json
from pathlib import Path

import pytest

from tests.helpers import load_experiment


@pytest.fixture(scope="module")
def ablation():
    return load_experiment("rl2_ablation")


def test_parse_settings(ablation):
    assert ablation.parse_settings("default") == {}
    assert ablation.parse_settings("gamma=0.99,cell=lstm,value-time-input=false") == {
        "gamma": 0.99, "cell": "lstm", "value_time_input": False}
    with pytest.raises(SystemExit):
        ablation.parse_settings("gamma")


def test_quick_sweep_writes_records_and_a_paired_table(ablation, tmp_path):
    out = tmp_path / "runs.jsonl"
    text = ablation.main(["--quick", "--env-steps", "300", "--out", str(out), "--logdir", str(tmp_path / "runs")])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["settings"] for r in records] == [{"num_trials": 16, "hidden_size": 8},
                                              {"num_trials": 16, "hidden_size": 8, "lr": 0.05}]
    for rec in records:
        assert len(rec["scores"]) == len(rec["reference"]["ucb1"]) == 50
        assert rec["env_steps"] == 320 and len(rec["load_before"]) == 3  # 4 iterations of 16 trials of 5 pulls
        assert Path(rec["run_dir"], "eval", "final_test.json").exists()
        assert rec["sample_eval"] is True and len(rec["scores_other_eval"]) == 50
        assert rec["scores_other_eval"] != rec["scores"]  # mode actions, not a second sampled score
    rows = [line for line in text.splitlines() if line.startswith("| num_trials")]
    assert len(rows) == 2 and rows[0].split("|")[5].strip() == "—"
    assert all(row.split("|")[7].strip().startswith("mode actions: ") for row in rows)
    assert "UCB1 (c 0.2) on the same tasks" in text and "or 300 env steps, whichever first" in text
    assert ablation.main(["--table", str(out)]) == text  # the table again, from the file alone
