"""``python -m metarl.evaluate``: adaptation curves and scores on held-out tasks.

    python -m metarl.evaluate RUN_DIR --split test             # a trained run
    python -m metarl.evaluate RUN_DIR --inner-steps 3 --init random   # MAML's random-init baseline
    python -m metarl.evaluate --algo thompson --env metarl/Bandit-v0 --k 5 --n 100 --json out.json
    python -m metarl.evaluate RUN_DIR --benchmark omniglot-oneshot --data-root all_runs/   # Lake et al. 2015

Writes a JSON report (keys in ARCHITECTURE.md) and a PNG plot of the adaptation curve, and
prints a summary.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Literal

from metarl import adaptation
from metarl.core.agent import Agent, InnerLoopAgent
from metarl.core.errors import UsageError
from metarl.core.registry import family_spec
from metarl.core.seeding import task_rng
from metarl.core.task import TaskFamily
from metarl.fewshot.agent import SupervisedAgent
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, load_run, restore_agent
from metarl.run.config import (
    EvalConfig,
    build_agent,
    family_default,
    first_pass,
    import_modules,
    parse_sections,
    resolve_algo_and_env,
    run_cli,
)
from metarl.run.logger import write_eval
from metarl.run.trainer import setup_torch

PROG = "python -m metarl.evaluate"
HELP = (
    "Evaluate a trained run or a non-learning baseline on held-out tasks: python -m metarl.evaluate RUN_DIR "
    "[flags], or python -m metarl.evaluate --algo NAME --env ID [flags] for a baseline (random, thompson, ucb1, "
    "psrl, nearest_neighbour, ...: python -m metarl.list). RUN_DIR --help and --algo NAME --env ID --help list "
    "the flags that apply there (a baseline's and its family's). --import MODULE imports a module that "
    "registers families; --debug shows tracebacks. Writes a JSON report and a PNG of the adaptation curve."
)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """A fixed benchmark to score instead of sampled tasks."""

    benchmark: Literal["omniglot-oneshot"] | None = dataclasses.field(
        default=None, metadata={"help": "score a fixed benchmark: omniglot-oneshot (Lake et al. 2015's 20 runs)"})
    data_root: str = dataclasses.field(
        default="", metadata={"help": "with --benchmark: the folder (or all_runs.zip) holding run01 … run20"})


def main(argv: list[str] | None = None) -> int:
    """Parse flags, evaluate, write the report; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first, rest = first_pass(PROG, argv, positional_run=True)
    import_modules(first.imports)
    if first.run_dir:
        if first.algo or first.env or first.config:
            raise UsageError("give either RUN_DIR or --algo/--env, not both")
        run_dir = Path(first.run_dir)
        spec = load_run(run_dir, first.imports)
        agent_cls, family, family_id = spec.agent_cls, spec.family, family_spec(spec.env_id).id
        target_id = flag_value(rest, "--target")
        sections: dict[str, Any] = {"eval": EvalConfig(), "benchmark": BenchmarkConfig()}
        if target_id:
            target_id = family_spec(target_id).id
            sections["target"] = family_default(target_id)
        parsed = parse_sections(PROG, f"Evaluate the run {run_dir}. {HELP}", sections, rest)
        ev, bench, target_family = parsed["eval"], parsed["benchmark"], parsed.get("target")
        agent = spec.build_agent(setup_torch(spec.run))
        if ev.init == "trained":
            checkpoint = run_dir / "checkpoints" / CHECKPOINT
            restore_agent(agent, load_checkpoint(checkpoint), checkpoint)
        default_json = run_dir / "eval" / (f"{ev.split}.json" if ev.init == "trained" else f"{ev.split}-random-init.json")
    else:
        if not first.algo and ("--help" in rest or "-h" in rest):
            parse_sections(PROG, HELP, {"eval": EvalConfig(), "benchmark": BenchmarkConfig()}, ["--help"])
        if not first.algo:
            raise UsageError("give a run directory (RUN_DIR) or a baseline with --algo NAME --env ID")
        agent_cls, env_id = resolve_algo_and_env(first.algo, first.env, {})
        if agent_cls.learns:
            raise UsageError(
                f"{agent_cls.name} learns: train it with python -m metarl.train --algo {agent_cls.name} "
                f"--env {env_id}, then evaluate the run directory"
            )
        if "--benchmark" in rest:  # the benchmark's --data-root replaces the family's flags
            sections = parse_sections(
                PROG,
                f"Score the baseline {agent_cls.name} on a benchmark ({env_id} with its default arguments).",
                {"eval": EvalConfig(), "agent": agent_cls.config_class(), "benchmark": BenchmarkConfig()},
                rest,
            )
            sections["env"] = family_default(env_id)
        else:
            sections = parse_sections(
                PROG,
                f"Evaluate the baseline {agent_cls.name} on {env_id}.",
                {"eval": EvalConfig(), "agent": agent_cls.config_class(), "env": family_default(env_id)},
                rest,
            )
            sections["benchmark"] = BenchmarkConfig()
        target_family = None
        ev, family, bench = sections["eval"], sections["env"], sections["benchmark"]
        family_id = family_spec(env_id).id
        agent = build_agent(agent_cls, sections["agent"], family, family_id, seed=ev.seed)
        default_json = None
        if ev.target or ev.beside:
            raise UsageError("--target and --beside compare trained runs: give RUN_DIR")
    if ev.inner_steps is not None:
        if not isinstance(agent, InnerLoopAgent):
            raise UsageError(f"--inner-steps applies to gradient-based agents (maml, maml_pg); {agent_cls.name} "
                             "adapts without inner steps")
        agent.eval_inner_steps = ev.inner_steps
    if ev.init == "random" and not first.run_dir:
        raise UsageError("--init random evaluates a run's agent freshly initialised: give RUN_DIR")
    if bench.benchmark:
        return score_benchmark(agent, agent_cls.name, family, family_id, bench, Path(ev.json) if ev.json else (
            default_json.with_name(f"{bench.benchmark}.json") if default_json is not None else None))
    if first.run_dir and ev.protocol and not bench.benchmark:
        return evaluate_protocol(agent, Path(first.run_dir), family, family_id, ev, target_family, first.imports)
    num_tasks = agent.eval_task_count(ev.num_tasks)
    if num_tasks < ev.num_tasks:
        print(f"{agent_cls.name} trains on each task it is evaluated on: evaluating the first {num_tasks} of "
              f"--num-tasks {ev.num_tasks}", file=sys.stderr)
    try:
        tasks = family.sample_tasks(num_tasks, ev.split, task_rng(ev.seed, ev.split), shift=ev.shift)
    except ValueError as exc:
        raise UsageError(f"--shift on {family_id}: {exc}") from None
    result = agent.evaluate(tasks, seed=ev.seed)
    report = result.report(family_id, agent_cls.name, ev.split)
    report["family_kwargs"] = family.kwargs()
    report["init"] = ev.init
    report["shift"] = list(ev.shift)
    json_path = Path(ev.json) if ev.json else default_json
    if json_path is not None:
        png = Path(ev.plot) if ev.plot else json_path.with_suffix(".png")
        write_eval(result, report, json_path, png, f"{family_id} {agent_cls.name} ({ev.split}, {len(tasks)} tasks)")
        print(f"wrote {json_path} and {png}", file=sys.stderr)
    print(summary(report))
    return 0


def flag_value(argv: list[str], name: str) -> str:
    """The value of ``name`` on a command line (``--name V`` or ``--name=V``), or ``""``."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return ""


def evaluate_protocol(agent: Agent, run_dir: Path, family: TaskFamily[Any], family_id: str, ev: EvalConfig,
                      target: TaskFamily[Any] | None, imports: tuple[str, ...]) -> int:
    """The domain-adaptation protocol (:mod:`metarl.adaptation`): the run beside other runs and
    baselines on the same tasks; writes ``eval/<label>.json`` and ``.png`` and prints a table."""
    source, source_id = family, family_id
    if target is not None:
        adaptation.check_transfer(agent, source, target, ev.target)
        family, family_id = target, family_spec(ev.target).id
    runs = [adaptation.Method(adaptation.method_name(agent), adaptation.role_of(agent), agent)]
    for other in ev.beside:
        method = adaptation.load_method(Path(other), imports)
        if any(m.name == method.name for m in runs):
            method.name = f"{method.name} ({Path(other).name})"
        if target is not None:
            adaptation.check_transfer(method.agent, method.agent.family, family, family_id)
        runs.append(method)
    extra = adaptation.methods_beside(runs, family, family_id, ev.seed, ev.scratch_steps, ev.scratch_lr,
                                      ev.scratch_tasks or None) if ev.baselines else []
    report = adaptation.run_protocol([*runs, *extra], family, family_id, ev.split, ev.shift, ev.seed, ev.num_tasks)
    first = report["methods"][0]  # the run's own figures at the top level, as without the protocol
    report = {"algo": agent.name, **{k: first[k] for k in ("x_name", "curve_name", "curve", "score_name", "score")},
              **report, "source_family": source_id}
    label = adaptation.protocol_label(ev.split, ev.shift, ev.target)
    json_path = Path(ev.json) if ev.json else run_dir / "eval" / f"{label}.json"
    png = Path(ev.plot) if ev.plot else json_path.with_suffix(".png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    title = f"{family_id} ({ev.split}{', ' + ' '.join(ev.shift) if ev.shift else ''}, {ev.num_tasks} tasks)"
    adaptation.plot_methods(report["methods"], title, png)
    print(f"wrote {json_path} and {png}", file=sys.stderr)
    print(title)
    print(adaptation.table(report["methods"]))
    print(summary(report))
    return 0


def score_benchmark(agent: Agent, algo: str, family: TaskFamily[Any], family_id: str, bench: BenchmarkConfig,
                    json_path: Path | None) -> int:
    """Score ``agent`` on a fixed benchmark, print per-run results and write the JSON report."""
    from metarl.envs import omniglot_oneshot as oneshot

    if not isinstance(agent, SupervisedAgent):
        raise UsageError(f"--benchmark {bench.benchmark} scores few-shot classifiers; {algo} is not one")
    if not bench.data_root:
        raise UsageError(f"--benchmark {bench.benchmark} needs --data-root DIR: the folder (or all_runs.zip) "
                         f"holding {oneshot.LAYOUT}")
    size = int(agent.family.input_shape[-1])
    try:
        runs = oneshot.load_runs(bench.data_root, image_size=size)
    except ValueError as exc:  # DatasetError: missing or malformed runs
        raise UsageError(str(exc)) from exc
    report = {"family": family_id, "algo": algo, "family_kwargs": family.kwargs(), "image_size": size,
              **oneshot.score_runs(agent.classify, runs)}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {json_path}", file=sys.stderr)
    print(oneshot.summary(report))
    print(json.dumps({k: report[k] for k in ("benchmark", "algo", "num_runs", "error_rate")}))
    return 0


def summary(report: dict[str, Any]) -> str:
    """A one-line human summary followed by the report's score as JSON."""
    s = report["score"]
    head = (f"{report['algo']} on {report['family']} ({report['split']}, {report['num_tasks']} tasks): "
            f"{report['score_name']} = {s['mean']:.4g} ± {s['ci95']:.2g} (95% CI)")
    return head + "\n" + json.dumps({k: report[k] for k in ("family", "algo", "split", "num_tasks", "score_name", "score")})


def cli() -> None:
    """The console script ``metarl-evaluate``: :func:`main` with the CLI's error handling."""
    run_cli(main)


if __name__ == "__main__":
    cli()
