"""Scores for reference: a family's non-learning baselines evaluated on the very tasks a trained
agent was scored on, and the summary ``metarl.train`` prints at the end of a run."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metarl.core.agent import EvalResult
from metarl.core.errors import UsageError
from metarl.core.registry import algo_spec
from metarl.core.stats import mean_ci95
from metarl.core.task import Task, TaskFamily
from metarl.run.config import build_agent


@dataclasses.dataclass
class Reference:
    """One baseline's score on the trained agent's held-out tasks."""

    algo: str
    score_name: str
    mean: float
    ci95: float
    seconds: float
    difference: float | None = None
    """Trained minus baseline, task by task (same tasks, so the interval is paired and narrower)."""
    difference_ci95: float | None = None


def comparable(result: EvalResult, score_name: str, curve_name: str) -> tuple[str, np.ndarray]:
    """A baseline's per-task scores in the trained agent's terms: its own score when the names
    agree; else, for returns, the mean return per episode (a non-learning policy's episodes
    are alike, so that is what an adapted policy's return after N steps compares with)."""
    if result.score_name == score_name:
        return score_name, result.scores
    if result.curve_name == curve_name == "return":
        return "return_per_episode", result.curve.mean(axis=1)
    return result.score_name, result.scores


def shared_settings(config: Any, baseline_config_class: type) -> dict[str, Any]:
    """The trained agent's settings a baseline also has (the evaluation protocol: episodes per
    trial, shot counts), so that both are scored the same way."""
    names = {f.name for f in dataclasses.fields(baseline_config_class) if f.init}
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}


def score_baselines(family: TaskFamily[Any], family_id: str, agent_config: Any, result: EvalResult,
                    tasks: Sequence[Task], seed: int) -> tuple[list[Reference], list[str]]:
    """Evaluate each of ``family.baselines`` on ``tasks`` with ``seed``; returns their scores
    and a note for each baseline that does not apply to this family's settings."""
    references, notes = [], []
    for name in family.baselines:
        agent_cls = algo_spec(name).load()
        try:
            baseline = build_agent(agent_cls, agent_cls.config_class(**shared_settings(
                agent_config, agent_cls.config_class)), family, family_id, seed=seed)
        except (UsageError, TypeError, ValueError) as exc:
            notes.append(f"{name}: not scored ({exc})")
            continue
        began = time.perf_counter()
        baseline_result = baseline.evaluate(list(tasks), seed=seed)
        score_name, scores = comparable(baseline_result, result.score_name, result.curve_name)
        mean, ci = mean_ci95(scores)
        reference = Reference(name, score_name, float(mean), float(ci), time.perf_counter() - began)
        if score_name == result.score_name:
            diff, diff_ci = mean_ci95(result.scores - scores)
            reference.difference, reference.difference_ci95 = float(diff), float(diff_ci)
        references.append(reference)
    return references, notes


def summary_lines(algo: str, report: dict[str, Any], references: Sequence[Reference], notes: Sequence[str]) -> list[str]:
    """The table of the trained agent's score beside its references."""
    score = report["score"]
    rows = [(algo + " (trained)", report["score_name"], score["mean"], score["ci95"], "")]
    for r in references:
        paired = (f"{algo} {'+' if r.difference >= 0 else '-'} {abs(r.difference):.3g} ± {r.difference_ci95:.2g} (paired)"
                  if r.difference is not None and r.difference_ci95 is not None else "")
        rows.append((r.algo, r.score_name, r.mean, r.ci95, paired))
    width = max(len(r[0]) for r in rows)
    lines = [f"held-out test tasks ({report['num_tasks']}), {report['score_name']}, mean ± 95% CI:"]
    for name, score_name, mean, ci, paired in rows:
        other = "" if score_name == report["score_name"] else f"  ({score_name})"
        lines.append(f"  {name:<{width}}  {mean:9.4g} ± {ci:<7.2g} {paired}{other}".rstrip())
    lines += [f"  {note}" for note in notes]
    return lines


def write_references(path: Path, references: Sequence[Reference]) -> None:
    """Save the baselines' scores beside the run's final report."""
    path.write_text(json.dumps([dataclasses.asdict(r) for r in references], indent=2) + "\n")


def print_lines(lines: Sequence[str]) -> None:
    """Print to stderr (stdout carries the run's one JSON line)."""
    print("\n".join(lines), file=sys.stderr)
