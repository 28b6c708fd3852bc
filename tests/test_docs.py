"""The documentation's examples run as written: the two families of ``docs/families.md`` (with
the sizes their headings state) pass the checker, train and resolve through Gymnasium, and the
README's Python snippet works."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from metarl import train
from metarl.conformance import check_family
from metarl.core.registry import family_spec
from tests.helpers import only_run, run_command

ROOT = Path(__file__).resolve().parents[1]
FAMILIES_DOC = ROOT / "docs" / "families.md"


def _examples() -> dict[str, tuple[str, int]]:
    """Each example module of the families page: its file name, code and the line count its heading states."""
    text = FAMILIES_DOC.read_text()
    examples = {}
    for section in text.split("\n## ")[1:]:
        heading = section.splitlines()[0]
        blocks = re.findall(r"```python\n(.*?)```", section, re.S)
        if not blocks:
            continue
        (code,) = blocks
        stated = re.search(r"\((\d+) lines of code\)", heading)
        name = code.splitlines()[0].removeprefix("# ").strip()
        assert stated and name.endswith(".py"), heading
        examples[name] = (code, int(stated.group(1)))
    return examples


@pytest.fixture(scope="module")
def doc_modules(tmp_path_factory):
    """The examples written out as modules and imported (which registers their families)."""
    folder = tmp_path_factory.mktemp("docs")
    examples = _examples()
    for name, (code, _) in examples.items():
        (folder / name).write_text(code)
    sys.path.insert(0, str(folder))
    try:
        for name in examples:
            __import__(name.removesuffix(".py"))
        yield folder
    finally:
        sys.path.remove(str(folder))


def test_the_examples_are_as_short_as_their_headings_say():
    examples = _examples()
    assert set(examples) == {"line_goal.py", "pole_lengths.py"}
    for name, (code, stated) in examples.items():
        counted = sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))
        assert counted == stated, (name, counted, stated)
    assert examples["line_goal.py"][1] <= 60 and examples["pole_lengths.py"][1] <= 20


@pytest.mark.parametrize("family_id", ["mine/LineGoal-v0", "mine/PoleLengths-v0"])
def test_the_documented_families_pass_the_checker_and_resolve_through_gymnasium(doc_modules, family_id):
    report = check_family(family_id)
    assert report.ok, str(report)
    env = gym.make(family_id)
    env.reset(seed=0)
    env.close()
    assert family_spec(family_id).kind == "rl"


def test_rl2_trains_on_the_documented_family(doc_modules, tmp_path, capfd):
    argv = ["--algo", "rl2", "--env", "line_goal:mine/LineGoal-v0", "--num-trials", "16", "--total-env-steps", "1280",
            "--eval-tasks", "20", "--no-progress", "--logdir", str(tmp_path)]
    code, err = run_command(train.main, argv, capfd)
    assert code == 0, err
    run = only_run(tmp_path)
    assert "random" in err and "--import line_goal --split ood" in err
    assert (run / "eval" / "final_test.json").is_file()


def test_the_readme_python_snippet_runs():
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [code for code in re.findall(r"```python\n(.*?)```", readme, re.S) if "make_vec" in code]
    exec(compile(snippet, "README.md", "exec"), {})


def test_the_readme_trains_sb3_ppo_in_three_lines():
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [code for code in re.findall(r"```python\n(.*?)```", readme, re.S) if "SB3VecEnv" in code]
    assert len([line for line in snippet.splitlines() if line.strip()]) == 3
    small = snippet.replace("learn(100_000)", "learn(256)").replace("num_envs=16", "num_envs=1")  # one 2,048-step rollout
    exec(compile(small, "README.md", "exec"), {})
