"""``python -m metarl.check``: a clear report and exit status 0 on a good family, 1 on a
broken one, 2 on bad input; it takes built-in ids, ``module:Id`` and the family's flags."""

from __future__ import annotations

import textwrap

import pytest

from metarl import check
from tests.helpers import run_command

BROKEN = textwrap.dedent(
    """
    import dataclasses
    import numpy as np
    import metarl
    from metarl.envs.nav2d import Nav2DFamily

    @dataclasses.dataclass(frozen=True)
    class SameGoals(Nav2DFamily):
        '''Draws every split's goals from one fixed stream: test tasks are training tasks.'''

        def _sample_tasks(self, n, split, rng):
            return super()._sample_tasks(n, "train", np.random.default_rng(0))

    metarl.register("broken/SameGoals-v0", SameGoals)
    """
)


def test_a_good_family_passes_every_check_with_its_own_flags(capsys):
    assert check.main(["metarl/Bandit-v0", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "12 passed, 0 failed, 0 skipped" in out and "FAIL" not in out


def test_the_report_lists_each_check_and_the_exit_status_is_0(capsys):
    assert check.main(["metarl/HiddenGoalGrid-v0", "--only", "train and test tasks differ",
                       "--only", "per-env tasks"]) == 0
    out = capsys.readouterr().out
    assert "conformance of metarl/HiddenGoalGrid-v0" in out
    assert "pass  train and test tasks differ" in out and "pass  per-env tasks" in out and "2 passed, 0 failed" in out


def test_a_broken_user_family_fails_with_exit_status_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_family.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check.main(["broken_family:broken/SameGoals-v0", "--only", "train and test tasks differ"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  train and test tasks differ" in out and "test tasks are also train tasks" in out


@pytest.mark.parametrize("argv,message", [
    (["metarl/Bandt-v0"], "Did you mean 'metarl/Bandit-v0'"),
    (["metarl/Bandit-v0", "--only", "no such check"], "no such check"),
    (["metarl/Bandit-v0", "--k", "0"], "k (number of arms) must be >= 1"),
    (["metarl/Bandit-v0", "--only"], "--only needs a value"),
    (["metarl/Bandit-v0", "--device", "gpu0"], "--device gpu0: not a torch device"),
])
def test_bad_input_exits_2(argv, message, capfd):
    code, err = run_command(check.main, argv, capfd)
    assert code == 2 and message in err, err


def test_help_lists_the_checks(capsys):
    assert check.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "python -m metarl.check" in out and "train and test tasks differ (any)" in out
