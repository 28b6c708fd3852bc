"""Configuration of runs: the run and evaluation settings, flags and config files, and
building a family and an agent from them.

Flags come from frozen dataclasses: the run settings (:class:`RunConfig`), the
algorithm's config and the family's keyword arguments. ``--config FILE`` (a JSON file in
the layout of a run's ``config.json``) supplies defaults that flags then override.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from metarl.core.registry import MissingDependencyError, UnknownIdError, algo_spec, family_spec
from metarl.core.task import TaskFamily


class UsageError(ValueError):
    """A bad flag, config value or path: printed without a traceback, exit status 2."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of a training run that every algorithm shares."""

    seed: int = dataclasses.field(default=0, metadata={"help": "seed of tasks, environments and networks"})
    logdir: str = dataclasses.field(default="runs", metadata={"help": "where run directories are created"})
    device: Literal["auto", "cpu", "cuda"] = dataclasses.field(
        default="cpu", metadata={"help": "auto uses a GPU when there is one"}
    )
    threads: int = dataclasses.field(
        default=1, metadata={"help": "torch intra-op threads on CPU (1 is fastest for small networks)"}
    )
    eval_every: int = dataclasses.field(default=25, metadata={"help": "evaluate on held-out tasks every N iterations (0: only at the end)"})
    eval_tasks: int = dataclasses.field(default=500, metadata={"help": "held-out test tasks per evaluation"})
    checkpoint_every: float = dataclasses.field(default=60.0, metadata={"help": "seconds between checkpoints"})
    time_limit: float = dataclasses.field(default=0.0, metadata={"help": "stop after this many seconds of training (0: no limit)"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        for name in ("threads", "eval_tasks"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "time_limit"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Settings of ``python -m metarl.evaluate``."""

    split: Literal["train", "test", "ood"] = dataclasses.field(default="test", metadata={"help": "which tasks to evaluate on"})
    num_tasks: int = dataclasses.field(default=1000, metadata={"help": "number of tasks (one trial or episode set each)"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of the evaluation tasks and environments"})
    json: str | None = dataclasses.field(default=None, metadata={"help": "write the JSON report here (default: RUN_DIR/eval/<split>.json)"})
    plot: str | None = dataclasses.field(default=None, metadata={"help": "write the PNG plot here (default: next to the JSON)"})
    inner_steps: int | None = dataclasses.field(
        default=None, metadata={"help": "gradient-based agents (maml, maml_pg): adapt with 0..N inner steps (default: the run's)"})
    init: Literal["trained", "random"] = dataclasses.field(
        default="trained", metadata={"help": "random: the run's agent freshly initialised (the random-initialisation baseline)"})

    def __post_init__(self) -> None:
        if self.num_tasks < 1:
            raise UsageError(f"--num-tasks must be >= 1, got {self.num_tasks}")
        if self.inner_steps is not None and self.inner_steps < 0:
            raise UsageError(f"--inner-steps must be >= 0, got {self.inner_steps}")


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a config dataclass from a dict, naming any unknown key and the valid ones."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad value in {where}: {exc}") from exc


def load_config_file(path: str) -> dict[str, Any]:
    """Read a ``--config`` JSON file (the layout of a run's ``config.json``)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config {path}: no such file (expected a JSON file like a run's config.json)")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config {path} is not valid JSON: {exc}") from exc
    allowed = {"algo", "env", "family", "agent", "run", "metarl_version", "command"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise UsageError(f"--config {path}: expected a JSON object with keys among {sorted(allowed)}")
    return data


def check_flag_names(*classes: type) -> None:
    """Raise if two config dataclasses would produce the same flag."""
    seen: dict[str, str] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.name in seen:
                raise RuntimeError(f"flag --{f.name} is defined by both {seen[f.name]} and {cls.__name__}")
            seen[f.name] = cls.__name__


def parse_sections(
    prog: str, description: str, defaults: dict[str, Any], argv: list[str]
) -> dict[str, Any]:
    """Parse ``argv`` into the given dataclass instances (flags without prefixes).

    ``defaults`` maps a section name to a default instance; the result maps it to the
    parsed instance. ``--help`` lists every flag with its default and meaning.
    """
    check_flag_names(*(type(v) for v in defaults.values()))
    fields = [(name, type(value), dataclasses.field(default=value)) for name, value in defaults.items()]
    combined = dataclasses.make_dataclass("Flags", fields, frozen=True)
    try:
        parsed = tyro.cli(  # type: ignore[call-overload]
            Annotated[combined, tyro.conf.OmitArgPrefixes],  # type: ignore[valid-type]
            default=combined(**defaults),
            args=argv,
            prog=prog,
            description=description,
        )
    except (TypeError, ValueError) as exc:  # a config class's own validation
        raise UsageError(str(exc)) from exc
    return {name: getattr(parsed, name) for name in defaults}


def first_pass(prog: str, argv: list[str], positional_run: bool = False) -> tuple[argparse.Namespace, list[str]]:
    """Pick out the flags that decide which other flags exist: algo, env, config, resume."""
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    run_dir = None
    if positional_run and argv and not argv[0].startswith("-"):
        # Only a leading bare word is the run directory: "--k 3" must not lend its value.
        run_dir, argv = argv[0], argv[1:]
    parser.add_argument("--algo", default=None)
    parser.add_argument("--env", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--resume", default=None)
    first, rest = parser.parse_known_args(argv)
    first.run_dir = run_dir
    return first, rest


def family_default(env_id: str, overrides: dict[str, Any] | None = None) -> TaskFamily[Any]:
    """The family ``env_id`` built with its registered defaults (and ``overrides``)."""
    spec = family_spec(env_id)
    try:
        factory = spec.load()
    except MissingDependencyError as exc:
        raise UsageError(str(exc)) from exc
    if not isinstance(factory, type) or not dataclasses.is_dataclass(factory):
        raise UsageError(f"family {env_id} is not a dataclass, so its arguments cannot become flags")
    family: TaskFamily[Any] = from_dict(factory, {**spec.defaults, **(overrides or {})}, f"arguments of {env_id}")
    return family


def resolve_algo_and_env(algo: str | None, env: str | None, config: dict[str, Any]) -> tuple[Any, str]:
    """The agent class and family id from flags, then the config file, then defaults."""
    name = algo or config.get("algo") or "rl2"
    agent_cls = algo_spec(name).load()
    env_id = env or config.get("env") or agent_cls.default_env
    family_spec(env_id)  # unknown ids fail here, naming the close matches
    return agent_cls, env_id


def build_agent(agent_cls: Any, config: Any, family: TaskFamily[Any], env_id: str, **kwargs: Any) -> Any:
    """Build an agent, turning its refusal of a family or config into a usage error."""
    try:
        return agent_cls(config, family, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--algo {agent_cls.name} on {env_id}: {exc}") from exc


def run_cli(main: Any) -> None:
    """Run a CLI entry point, turning usage errors into a message and exit status 2."""
    try:
        code = main()
    except (UsageError, UnknownIdError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
