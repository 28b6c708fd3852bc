"""``python -m metarl.train``: meta-train an algorithm on a task family.

    python -m metarl.train --algo rl2                         # RL² on the 5-armed bandit
    python -m metarl.train --algo rl2 --env metarl/Bandit-v0 --k 10 --seed 1
    python -m metarl.train --resume runs/metarl-Bandit-v0__rl2__s0__20260101-120000
    python -m metarl.train --resume runs/<run> --total-env-steps 30000000   # train on, to a larger budget
    python -m metarl.train --algo rl2 --help                  # every flag, its default and meaning
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from metarl.core.checks import flag
from metarl.core.distributed import broadcast_object, shutdown, world
from metarl.core.errors import UsageError
from metarl.core.registry import family_spec
from metarl.run.checkpoint import RunSpec, config_json, load_run, new_run_dir, read_run_config, write_run_config
from metarl.run.compare import Reference, print_lines, score_baselines, summary_lines, write_references
from metarl.run.config import (
    RunConfig,
    build_agent,
    family_default,
    first_pass,
    from_dict,
    import_modules,
    load_config_file,
    parse_sections,
    recommended_settings,
    resolve_algo_and_env,
    run_cli,
    split_env,
)
from metarl.run.trainer import Trainer, setup_torch

PROG = "python -m metarl.train"


def main(argv: list[str] | None = None) -> int:
    """Parse flags, then train (or resume) a run; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first, rest = first_pass(PROG, argv)
    imports = import_modules(first.imports)
    if first.resume:
        if first.algo or first.env or first.config:
            raise UsageError("--resume RUN_DIR continues the run with its saved config.json: --algo, --env and "
                             "--config do not apply (start a new run with --config RUN_DIR/config.json instead)")
        return resume(Path(first.resume), first.imports, rest)
    config = load_config_file(first.config) if first.config else {}
    agent_cls, env_id = resolve_algo_and_env(first.algo, first.env, config, first.imports)
    env_module, _ = split_env(first.env or "")
    if env_module:
        imports += import_modules([env_module])
    if not agent_cls.learns:
        raise UsageError(
            f"{agent_cls.name} is a non-learning baseline; evaluate it with "
            f"python -m metarl.evaluate --algo {agent_cls.name} --env {env_id}"
        )
    same_env = split_env(config.get("env", env_id))[1] == env_id
    family_cls = family_spec(env_id).load()
    recommended = recommended_settings(family_cls, agent_cls)
    sections = parse_sections(
        PROG, help_text(agent_cls, env_id, family_cls.__name__),
        {
            "run": from_dict(RunConfig, config.get("run", {}), "the run section of --config"),
            "agent": from_dict(agent_cls.config_class, over(recommended, config.get("agent", {})),
                               "the agent section of --config"),
            "env": family_default(env_id, config.get("family", {}) if same_env else {}),
        },
        rest,
    )
    family = sections["env"]
    family_id = family_spec(env_id).id
    run: RunConfig = sections["run"]
    device = setup_torch(run)
    agent = build_agent(agent_cls, sections["agent"], family, family_id, seed=run.seed, device=device)
    if run.amp and agent_cls.amp_refusal:
        raise UsageError(f"--amp with --algo {agent_cls.name}: {agent_cls.amp_refusal}. Mixed precision is for "
                         "protonet, matching, siamese and finetune")
    for split in ("train", "test"):  # a missing data set fails here, before a run directory exists
        family.sample_tasks(1, split)
    if run.eval_shift or run.eval_ood:  # so does a shift the family lacks
        try:
            family.sample_tasks(1, "test" if run.eval_shift else "ood", shift=run.eval_shift)
        except ValueError as exc:
            raise UsageError(f"--eval-shift on {family_id}: {exc}") from None
    main_process = world().main
    run_dir: Path | None = None
    if main_process:  # under torchrun, rank 0 makes the run directory and tells the others
        run_dir = new_run_dir(run.logdir, family_id, agent_cls.name, run.seed)
        (run_dir / "config.json").write_text(
            config_json(agent_cls.name, family_id, family, sections["agent"], run, argv, imports))
        kept = {k: v for k, v in recommended.items() if getattr(sections["agent"], k) == v}
        if kept:
            print(f"{family_id} recommends for {agent_cls.name} (measured, experiments/RESULTS.md): "
                  f"{' '.join(f'{flag(k)} {v}' for k, v in kept.items())}; a flag overrides it", file=sys.stderr)
        processes = f" ({world().size} processes)" if world().size > 1 else ""
        print(f"run directory: {run_dir}{processes}\nwatch it with: tensorboard --logdir {run.logdir}", file=sys.stderr)
    run_dir = broadcast_object(run_dir)
    assert run_dir is not None
    trainer = Trainer(agent, agent_cls.name, family_id, run, run_dir)
    code = trainer.train()
    if code == 0 and main_process:
        finish(trainer, sections["agent"])
    return code


def over(recommended: dict[str, Any], section: Any) -> Any:
    """A ``--config`` agent section laid over the family's recommended settings; a section that
    is not a JSON object is passed on as it is, for ``from_dict`` to refuse clearly."""
    return {**recommended, **section} if isinstance(section, dict) else section


def help_text(agent_cls: Any, env_id: str, family_class: str) -> str:
    """``--help``'s description: the flags that choose what to train, and where the rest come from."""
    algo = agent_cls.name
    return (
        f"Meta-train --algo {algo} on --env {env_id}; the flags below are the run's, {algo}'s "
        f"({agent_cls.config_class.__name__}) and {env_id}'s ({family_class}). Also: --algo NAME (python -m metarl.list shows them; "
        "--algo NAME --help shows that algorithm's flags), --env ID or --env module:ID (a family of your own "
        "module; --env ID --help shows its flags), --config FILE (a JSON config, e.g. a run's config.json), "
        f"--resume RUN_DIR [budget flags] (continue a run, optionally to a larger budget: --time-limit, and for "
        f"{algo} {', '.join(map(flag, agent_cls.budget_fields))}), --import MODULE (import a module that "
        "registers families), --debug (tracebacks on errors)."
    )


RESUMABLE_RUN_FIELDS = ("time_limit", "eval_every", "eval_budget", "eval_tasks", "checkpoint_every", "progress",
                        "compare", "threads")
"""Run settings a resumed run may change: budgets and bookkeeping, nothing its results depend on
but where it stops (``eval_tasks`` changes only which tasks report on it)."""


def resume(run_dir: Path, imported: list[str], argv: list[str]) -> int:
    """Continue a run from its latest checkpoint with its saved config; flags may raise its
    budget (``--time-limit``, the algorithm's ``budget_fields``) and change its bookkeeping."""
    spec = load_run(run_dir, imported)
    config = new_budget(spec, argv) if argv else None
    if config is not None:
        spec = dataclasses.replace(spec, run=config[0], agent_config=config[1])
    agent = spec.build_agent(setup_torch(spec.run))
    trainer = Trainer(agent, spec.agent_cls.name, family_spec(spec.env_id).id, spec.run, run_dir)
    trainer.restore()
    if config is not None and world().main:  # only once the checkpoint has loaded: bad input changes no file
        saved = read_run_config(run_dir)
        saved["run"], saved["agent"] = dataclasses.asdict(spec.run), dataclasses.asdict(spec.agent_config)
        write_run_config(run_dir, saved)
    if world().main:
        print(f"resuming {run_dir} at iteration {trainer.iteration}", file=sys.stderr)
    code = trainer.train(resumed=True)
    if code == 0 and trainer.final_report is not None and world().main:
        finish(trainer, spec.agent_config)
    return code


def new_budget(spec: RunSpec, argv: list[str]) -> tuple[RunConfig, Any]:
    """The run and agent settings of a ``--resume`` command's flags, refusing any flag that
    would change what the run is (its algorithm's settings, family, seed or device)."""
    budget = spec.agent_cls.budget_fields
    parsed = parse_sections(
        PROG, f"Resume {spec.run_dir}: its budget (--time-limit, {', '.join(map(flag, budget))}) and bookkeeping "
        "flags may change.", {"run": spec.run, "agent": spec.agent_config}, argv)
    allowed = {("run", name) for name in RESUMABLE_RUN_FIELDS} | {("agent", name) for name in budget}
    for section, old in (("run", spec.run), ("agent", spec.agent_config)):
        new = parsed[section]
        for field in dataclasses.fields(new):
            if getattr(new, field.name) != getattr(old, field.name) and (section, field.name) not in allowed:
                raise UsageError(
                    f"{flag(field.name)} cannot change when resuming: {spec.run_dir} continues with its saved "
                    f"settings. A resumed run takes its budget (--time-limit, {', '.join(map(flag, budget))}) and "
                    f"{', '.join(flag(n) for n in RESUMABLE_RUN_FIELDS if n != 'time_limit')}; to change "
                    f"{flag(field.name)}, start a new run: python -m metarl.train --config {spec.run_dir}/config.json "
                    f"{flag(field.name)} ...")
    return parsed["run"], parsed["agent"]


def finish(trainer: Trainer, agent_config: Any) -> None:
    """After a completed run: its score beside the family's baselines on the same held-out tasks,
    and the commands to look further."""
    run, run_dir, report = trainer.run, trainer.run_dir, trainer.final_report
    assert report is not None and trainer.final_result is not None
    references: list[Reference] = []
    notes: list[str] = []
    family = trainer.agent.family
    if run.compare and family.baselines:
        references, notes = score_baselines(family, trainer.family_id, agent_config, trainer.final_result,
                                            trainer.eval_task_list, trainer.eval_seed)
        write_references(run_dir / "eval" / "baselines.json", references)
    lines = summary_lines(trainer.algo, report, references, notes)
    lines += [
        "next:",
        f"  the curves in TensorBoard:   tensorboard --logdir {run.logdir}",
        f"  a shifted task distribution: python -m metarl.evaluate {run_dir}{trainer.import_flags()} --split ood",
        f"  the adaptation curve plot:   {run_dir / 'eval' / 'final_test.png'} (numbers: final_test.json)",
    ]
    print_lines(lines)


def main_and_shutdown(argv: list[str] | None = None) -> int:
    """:func:`main`, then leave torchrun's process group if the run joined one."""
    try:
        return main(argv)
    finally:
        shutdown()


def cli() -> None:
    """The console script ``metarl-train``: :func:`main` with the CLI's error handling."""
    run_cli(main_and_shutdown)


if __name__ == "__main__":
    cli()
