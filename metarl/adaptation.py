"""The domain-adaptation protocol: methods side by side on the same shifted tasks.

``python -m metarl.evaluate RUN --split ood [--shift …] [--target ID] [--beside RUN2 …]``
scores the run's agent and, on the same tasks, with the same seed and data budget:

- other runs (``--beside``): a fine-tuning run, MAML-PG trained with ``--inner-steps 0`` (a
  multi-task pretrained policy adapted by the same inner steps), another meta-learner;
- ``scratch``: the same kind of network freshly initialised and trained on the target data
  alone (the MAML Conv-4 or MLP, or the MAML-PG policy, by plain gradient steps);
- test-time adaptation of each classifier with batch norm: its statistics re-estimated on
  each episode's support set;
- the family's non-learning baselines (pixel nearest neighbour, UCB1, …).

Every method's curve is put on one axis of data: shots per class for supervised families
(a model that adapts by inner steps is scored at each shot count after its steps), episodes
of experience in the task for RL (RL²'s episode ``i`` follows ``i - 1`` episodes; MAML-PG's
step ``s`` follows ``s x trajectories`` episodes).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metarl.core.agent import Agent, EvalResult, InnerLoopAgent
from metarl.core.errors import UsageError
from metarl.core.registry import algo_spec
from metarl.core.stats import mean_ci95
from metarl.core.task import Task, TaskFamily
from metarl.fewshot.agent import FewShotClassifier
from metarl.fewshot.evaluation import CURVE_SHOTS, curve_shots
from metarl.fewshot.family import ClassificationFamily, SupervisedFamily
from metarl.rl.family import RLFamily
from metarl.run.config import build_agent


@dataclasses.dataclass
class Method:
    """One method of the comparison: a name, its role, and the agent that adapts."""

    name: str
    role: str  # meta-learned | pretrained | scratch | test-time adaptation | baseline
    agent: Agent
    support_statistics: bool = False
    max_tasks: int | None = None  # score only the first tasks (training from scratch is slow)


def protocol_label(split: str, shift: Sequence[str], target: str) -> str:
    """A file-name-safe label of an evaluation setting: ``ood``, ``test+rotate_45``, ``Digits-v0``."""
    head = target.split("/")[-1] if target else split
    text = "+".join([head, *shift])
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)


def check_transfer(agent: Agent, source: TaskFamily[Any], target: TaskFamily[Any], target_id: str) -> None:
    """Refuse a target family the agent cannot be applied to, saying which flag would fix it."""
    if not isinstance(target, SupervisedFamily):
        raise UsageError(f"--target applies to supervised families (an RL policy's spaces are its family's): "
                         f"{target_id} is RL; evaluate RL shifts with --split ood or --shift")
    if not isinstance(source, SupervisedFamily) or source.problem != target.problem:
        raise UsageError(f"{agent.name} learned {getattr(source, 'problem', source.kind)}; {target_id} is "
                         f"{target.problem}")
    if tuple(source.input_shape) != tuple(target.input_shape):
        raise UsageError(f"the run's inputs are {source.input_shape}, {target_id}'s {target.input_shape}: pass the "
                         f"target's size flag (e.g. --image-size {source.input_shape[-1]})")
    if not isinstance(agent, FewShotClassifier) and source.num_outputs != target.num_outputs:
        raise UsageError(f"{agent.name} predicts {source.num_outputs} outputs (ways), {target_id} has "
                         f"{target.num_outputs}: pass --ways {source.num_outputs}")


def scratch_method(family: TaskFamily[Any], family_id: str, seed: int, steps: int, lr: float,
                   like: Sequence[Agent] = (), max_tasks: int | None = None) -> Method | None:
    """A fresh network trained by ``steps`` gradient steps of size ``lr`` on each task's own
    data: supervised MAML's model (Conv-4 or MLP) or MAML-PG's policy, randomly initialised
    (the config of a MAML-PG method in ``like`` when there is one, so the budget matches)."""
    if not isinstance(family, (SupervisedFamily, RLFamily)):
        return None
    if isinstance(family, SupervisedFamily):
        cls, same = algo_spec("maml").load(), None
    else:
        cls = algo_spec("maml_pg").load()
        same = next((a for a in like if isinstance(a, InnerLoopAgent) and a.name == "maml_pg"), None)
    config = same.config if same is not None else cls.config_class(
        inner_lr=lr, **({"eval_batch": 25} if isinstance(family, SupervisedFamily) else {}))
    agent = build_agent(cls, config, family, family_id, seed=seed)
    default_steps = 20 if isinstance(family, SupervisedFamily) else 3
    agent.eval_inner_steps = same.test_steps() if same is not None else (steps or default_steps)
    return Method("scratch", "scratch", agent, max_tasks=max_tasks)


def data_curve(method: Method, family: TaskFamily[Any], tasks: Sequence[Task], seed: int,
               shots: Sequence[int] = CURVE_SHOTS) -> EvalResult:
    """``method``'s curve on ``tasks`` against the data it saw (see the module docstring)."""
    agent = method.agent
    agent.family = family
    if isinstance(agent, FewShotClassifier):
        agent.support_statistics = method.support_statistics
        try:
            return agent.evaluate(tasks, seed=seed)
        finally:
            agent.support_statistics = False
    if isinstance(family, SupervisedFamily):
        return _curve_over_shots(agent, family, tasks, seed, shots)
    result = agent.evaluate(tasks, seed=seed)
    if result.x_name == "episode":
        x = [int(i) - 1 for i in result.x]
    elif result.x_name == "step":
        per_step = int(result.extra.get("trajectories_per_step", 1))
        x = [int(s) * per_step for s in result.x]
    else:
        x = list(result.x)
    return dataclasses.replace(result, x_name="episodes_seen", x=x)


def _curve_over_shots(agent: Agent, family: SupervisedFamily[Any], tasks: Sequence[Task], seed: int,
                      shots: Sequence[int]) -> EvalResult:
    """Score ``agent`` (adapting by its own rule: inner steps, a recurrent pass) at each shot count."""
    if not dataclasses.is_dataclass(family):
        raise UsageError(f"{agent.name} adapts by its own rule, so the protocol scores it at each shot count by "
                         f"varying the family's shots: {type(family).__name__} must be a dataclass for that")
    if isinstance(family, ClassificationFamily):  # classes have few examples: fewer queries may be left
        ks, queries = curve_shots(family.shots, family.queries, family.examples_available(tasks), shots)
    else:
        ks, queries = sorted({*shots, family.shots}), family.queries
    columns, last = [], None
    for k in ks:
        agent.family = dataclasses.replace(family, shots=k, queries=queries)  # type: ignore[type-var]
        try:
            last = agent.evaluate(tasks, seed=seed)
        finally:
            agent.family = family
        columns.append(last.scores)
    assert last is not None
    curve = np.stack(columns, axis=1)
    j = ks.index(family.shots)
    return EvalResult("shots", ks, last.curve_name, curve, f"{last.curve_name}_shots_{family.shots}", curve[:, j],
                      extra={"adapts_by": last.x_name, "steps": int(last.x[-1])})


def method_report(method: Method, result: EvalResult) -> dict[str, Any]:
    """One method's entry in the protocol's JSON: its curve and score with 95% CIs."""
    means, cis = mean_ci95(result.curve)
    score, score_ci = mean_ci95(result.scores)
    return {
        "name": method.name, "role": method.role, "algo": method.agent.name,
        "x_name": result.x_name, "curve_name": result.curve_name,
        "curve": [{"x": int(x), "mean": float(m), "ci95": float(c)} for x, m, c in zip(result.x, means, cis, strict=True)],
        "score_name": result.score_name, "score": {"mean": float(score), "ci95": float(score_ci)},
        "num_tasks": int(len(result.scores)),
    }


def plot_methods(reports: Sequence[dict[str, Any]], title: str, path: Path) -> None:
    """Every method's curve with its 95% band, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for rep in reports:
        x = np.array([p["x"] for p in rep["curve"]])
        m = np.array([p["mean"] for p in rep["curve"]])
        c = np.array([p["ci95"] for p in rep["curve"]])
        ax.plot(x, m, marker="o" if len(x) <= 20 else None, lw=1.6, label=f"{rep['name']} ({rep['role']})")
        ax.fill_between(x, m - c, m + c, alpha=0.2, lw=0)
    if reports:
        ax.set_xlabel(reports[0]["x_name"].replace("_", " "))
        ax.set_ylabel(f"mean {reports[0]['curve_name'].replace('_', ' ')}")
        if reports[0]["x_name"] == "shots":
            ax.set_xscale("log")
            ax.set_xticks([p["x"] for p in reports[0]["curve"]], [str(p["x"]) for p in reports[0]["curve"]])
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def table(reports: Sequence[dict[str, Any]]) -> str:
    """A plain-text table: one row per method, one column per point of the curve."""
    if not reports:
        return ""
    xs = sorted({p["x"] for r in reports for p in r["curve"]})
    width = max(len(r["name"]) for r in reports) + 2
    head = f"{'method':<{width}}{'role':<22}" + "".join(f"{reports[0]['x_name'][:6]}={x:<10}" for x in xs)
    lines = [head]
    for r in reports:
        by_x = {p["x"]: p for p in r["curve"]}
        cells = "".join(f"{by_x[x]['mean']:>7.3f}±{by_x[x]['ci95']:<8.3f}" if x in by_x else " " * 17 for x in xs)
        lines.append(f"{r['name']:<{width}}{r['role']:<22}{cells}")
    return "\n".join(lines)


def method_name(agent: Agent) -> str:
    """An agent's name in the comparison: its algorithm, and the variant when the config makes
    one (Meta-SGD, MAML-PG's pretrained policy, first-order MAML)."""
    config = agent.config
    if getattr(config, "meta_sgd", False):
        return f"{agent.name} (meta-sgd)"
    if agent.name == "maml_pg" and getattr(config, "inner_steps", 1) == 0:
        return "maml_pg (pretrained)"
    if getattr(config, "first_order", False):
        return f"{agent.name} (first order)"
    return agent.name


def role_of(agent: Agent) -> str:
    """What a run's agent stands for in the comparison."""
    if not agent.learns:
        return "baseline"
    if agent.name == "finetune" or (agent.name == "maml_pg" and getattr(agent.config, "inner_steps", 1) == 0):
        return "pretrained"
    return "meta-learned"


def load_method(run_dir: Path, imports: Sequence[str]) -> Method:
    """A trained run as a method (its checkpoint loaded), named by its algorithm."""
    from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, load_run, restore_agent
    from metarl.run.trainer import setup_torch

    spec = load_run(run_dir, imports)
    agent = spec.build_agent(setup_torch(spec.run))
    checkpoint = run_dir / "checkpoints" / CHECKPOINT
    restore_agent(agent, load_checkpoint(checkpoint), checkpoint)
    return Method(method_name(agent), role_of(agent), agent)


def methods_beside(runs: Sequence[Method], family: TaskFamily[Any], family_id: str, seed: int,
                   scratch_steps: int, scratch_lr: float, scratch_tasks: int | None = None) -> list[Method]:
    """The baselines the protocol adds to ``runs``: test-time adaptation of every classifier
    with batch norm, the scratch network, the family's non-learning baselines."""
    out = [Method(f"{m.name} + support BN", "test-time adaptation", m.agent, support_statistics=True)
           for m in runs if isinstance(m.agent, FewShotClassifier) and m.agent.norm_layers()]
    scratch = scratch_method(family, family_id, seed, scratch_steps, scratch_lr, [m.agent for m in runs],
                             scratch_tasks)
    if scratch is not None:
        out.append(scratch)
    for name in family.baselines:
        cls = algo_spec(name).load()
        out.append(Method(name, "baseline", build_agent(cls, cls.config_class(), family, family_id, seed=seed)))
    return out


def run_protocol(methods: Sequence[Method], family: TaskFamily[Any], family_id: str, split: str,
                 shift: Sequence[str], seed: int, num_tasks: int) -> dict[str, Any]:
    """Score every method on the same ``num_tasks`` tasks of ``split`` under ``shift``; the
    JSON report (one entry per method, in order)."""
    from metarl.core.seeding import task_rng

    try:
        tasks = family.sample_tasks(num_tasks, split, task_rng(seed, split), shift=tuple(shift))
    except ValueError as exc:
        raise UsageError(f"--shift on {family_id}: {exc}") from None
    reports = []
    for method in methods:
        start = time.perf_counter()
        report = method_report(method, data_curve(method, family, tasks[: method.max_tasks], seed))
        reports.append({**report, "seconds": round(time.perf_counter() - start, 2)})
    return {"family": family_id, "family_kwargs": family.kwargs(), "split": split, "shift": list(shift),
            "seed": seed, "num_tasks": num_tasks, "example_task": tasks[0].to_json() if tasks else None,
            "methods": reports}
