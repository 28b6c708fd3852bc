"""``python -m metarl.train``: meta-train an algorithm on a task family.

    python -m metarl.train --algo rl2                         # RL² on the 5-armed bandit
    python -m metarl.train --algo rl2 --env metarl/Bandit-v0 --k 10 --seed 1
    python -m metarl.train --resume runs/metarl-Bandit-v0__rl2__s0__20260101-120000
    python -m metarl.train --algo rl2 --help                  # every flag, its default and meaning
"""

from __future__ import annotations

import sys
from pathlib import Path

from metarl.core.errors import UsageError
from metarl.core.registry import family_spec
from metarl.run.checkpoint import config_json, load_run, new_run_dir
from metarl.run.config import (
    RunConfig,
    build_agent,
    family_default,
    first_pass,
    from_dict,
    import_modules,
    load_config_file,
    parse_sections,
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
        if rest or first.algo or first.env or first.config:
            raise UsageError("--resume RUN_DIR takes no other flags but --import: the run continues with its saved "
                             "config.json")
        return resume(Path(first.resume), first.imports)
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
    sections = parse_sections(
        PROG,
        f"Train {agent_cls.name} on {env_id}. Algorithm flags come from {agent_cls.config_class.__name__}, "
        f"family flags from {family_spec(env_id).load().__name__}.",
        {
            "run": from_dict(RunConfig, config.get("run", {}), "the run section of --config"),
            "agent": from_dict(agent_cls.config_class, config.get("agent", {}), "the agent section of --config"),
            "env": family_default(env_id, config.get("family", {}) if same_env else {}),
        },
        rest,
    )
    family = sections["env"]
    family_id = family_spec(env_id).id
    run: RunConfig = sections["run"]
    device = setup_torch(run)
    agent = build_agent(agent_cls, sections["agent"], family, family_id, seed=run.seed, device=device)
    for split in ("train", "test"):  # a missing data set fails here, before a run directory exists
        family.sample_tasks(1, split)
    run_dir = new_run_dir(run.logdir, family_id, agent_cls.name, run.seed)
    (run_dir / "config.json").write_text(
        config_json(agent_cls.name, family_id, family, sections["agent"], run, argv, imports))
    print(f"run directory: {run_dir}\nwatch it with: tensorboard --logdir {run.logdir}", file=sys.stderr)
    return Trainer(agent, agent_cls.name, family_id, run, run_dir).train()


def resume(run_dir: Path, imported: list[str]) -> int:
    """Continue a run from its latest checkpoint with its saved config."""
    spec = load_run(run_dir, imported)
    agent = spec.build_agent(setup_torch(spec.run))
    trainer = Trainer(agent, spec.agent_cls.name, family_spec(spec.env_id).id, spec.run, run_dir)
    trainer.restore()
    print(f"resuming {run_dir} at iteration {trainer.iteration}", file=sys.stderr)
    return trainer.train(resumed=True)


if __name__ == "__main__":
    run_cli(main)
