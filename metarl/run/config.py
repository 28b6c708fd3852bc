"""Configuration of runs: the run and evaluation settings, flags and config files, user
modules, building a family and an agent from them, and the command line's error handling.

Flags come from frozen dataclasses: the run settings (:class:`RunConfig`), the
algorithm's config and the family's keyword arguments. ``--config FILE`` (a JSON file in
the layout of a run's ``config.json``) supplies defaults that flags then override. Every
value, from a flag or from a file, is checked against its field's declared type and range
(:mod:`metarl.core.checks`).

Nothing in a config file or a run directory is ever imported: a user's module is imported
only when the command line names it (``--env module:Id`` or ``--import module``). A run
records the modules it was made with, so that loading it can say which to import.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from metarl.core.checks import check_field_types, check_value, flag
from metarl.core.errors import CheckpointError, DatasetError, DivergenceError, UsageError
from metarl.core.registry import MissingDependencyError, UnknownIdError, algo_spec, family_spec
from metarl.core.shift import parse_shifts
from metarl.core.task import TaskFamily

MAX_TASKS = 1_000_000
"""Most tasks one evaluation may ask for: a 95% interval over a million tasks is already about
a thousandth of the spread, and every task is built in memory."""


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
    eval_every: int | None = dataclasses.field(
        default=None, metadata={"help": "evaluate on held-out tasks every N iterations (0: only at the end; "
                                        "default: as often as --eval-budget allows)"})
    eval_budget: float = dataclasses.field(
        default=0.05, metadata={"help": "without --eval-every: the share of the training time that periodic "
                                       "held-out evaluation may take"})
    eval_tasks: int = dataclasses.field(default=500, metadata={"help": "held-out test tasks per evaluation"})
    checkpoint_every: float = dataclasses.field(default=60.0, metadata={"help": "seconds between checkpoints"})
    time_limit: float = dataclasses.field(default=0.0, metadata={"help": "stop after this many seconds of training (0: no limit)"})
    progress: bool = dataclasses.field(default=True, metadata={"help": "show a progress bar"})
    compare: bool = dataclasses.field(
        default=True, metadata={"help": "at the end, score the family's baselines on the same held-out tasks"})
    eval_ood: bool = dataclasses.field(
        default=False, metadata={"help": "also evaluate on out-of-distribution tasks, logged as eval_ood/... beside eval/..."})
    amp: bool = dataclasses.field(
        default=False, metadata={"help": "bfloat16 autocast in training (mixed precision; the metric learners and "
                                         "fine-tuning: algorithms where it is unsafe refuse it and say why)"})
    eval_shift: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "the out-of-distribution tasks of --eval-ood: the test split under these shifts "
                                      "(e.g. rotate:45 mass:2); none: the family's ood split. Implies --eval-ood"})

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed(self.seed)
        try:
            parse_shifts(self.eval_shift)
        except ValueError as exc:
            raise UsageError(f"--eval-shift: {exc}") from None
        for name in ("threads", "eval_tasks"):
            if getattr(self, name) < 1:
                raise UsageError(f"{flag(name)} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "time_limit"):
            if getattr(self, name) < 0:
                raise UsageError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.eval_every is not None and self.eval_every < 0:
            raise UsageError(f"--eval-every must be >= 0, got {self.eval_every}")
        if not 0 < self.eval_budget <= 1:
            raise UsageError(f"--eval-budget must lie in (0, 1], got {self.eval_budget}")
        check_task_count("--eval-tasks", self.eval_tasks)


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
    shift: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "shifts applied to the evaluation tasks, e.g. rotate:45 noise:0.3 mass:2 velocity:2..3 "
                                      "(an unknown one lists the family's); starts the adaptation protocol"})
    target: str = dataclasses.field(
        default="", metadata={"help": "evaluate on another supervised family (e.g. metarl/Digits-v0; its flags follow); "
                                      "starts the adaptation protocol"})
    beside: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "other run directories scored on the same tasks (a finetune run, MAML-PG with "
                                      "--inner-steps 0); starts the adaptation protocol"})
    baselines: bool = dataclasses.field(
        default=True, metadata={"help": "in the adaptation protocol (--split ood, --shift, --target, --beside), also score "
                                        "scratch training, test-time adaptation and the family's baselines"})
    scratch_steps: int = dataclasses.field(
        default=0, metadata={"help": "gradient steps of the scratch baseline on each task's data (0: 20 supervised; "
                                     "RL: a MAML-PG method's inner steps, else 3)"})
    scratch_lr: float = dataclasses.field(default=0.1, metadata={"help": "step size of the scratch baseline"})
    scratch_tasks: int = dataclasses.field(
        default=100, metadata={"help": "the scratch baseline scores the first N tasks only (training a network per task "
                                       "and shot count is slow; 0: all)"})

    def __post_init__(self) -> None:
        check_field_types(self)
        check_seed(self.seed)
        try:
            parse_shifts(self.shift)
        except ValueError as exc:
            raise UsageError(f"--shift: {exc}") from None
        if not 0 <= self.scratch_steps <= 10_000 or not self.scratch_lr > 0 or self.scratch_tasks < 0:
            raise UsageError(f"--scratch-steps must lie in [0, 10000], --scratch-lr be > 0 and --scratch-tasks >= 0, got "
                             f"{self.scratch_steps}, {self.scratch_lr} and {self.scratch_tasks}")

        if self.num_tasks < 1:
            raise UsageError(f"--num-tasks must be >= 1, got {self.num_tasks}")
        check_task_count("--num-tasks", self.num_tasks)
        if self.inner_steps is not None and not 0 <= self.inner_steps <= 1000:
            raise UsageError(f"--inner-steps must lie in [0, 1000], got {self.inner_steps}")

    @property
    def protocol(self) -> bool:
        """Whether methods are scored side by side (the domain-adaptation protocol)."""
        return self.split == "ood" or bool(self.shift or self.target or self.beside)


def check_seed(seed: int) -> None:
    """Seeds are non-negative integers below 2**63 (NumPy's and torch's common range)."""
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed must lie in [0, 2**63), got {seed}")


def check_task_count(name: str, n: int) -> None:
    """Refuse more than :data:`MAX_TASKS` tasks in one evaluation."""
    if n > MAX_TASKS:
        raise UsageError(f"{name} {n:,} is more than the {MAX_TASKS:,} tasks one evaluation may hold in memory")


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build a config dataclass from a dict (a section of a config file), checking every key
    and value: unknown keys are named with the valid ones, and values must have their
    field's type (floats finite) and pass the class's own range checks."""
    if not isinstance(data, dict):
        raise UsageError(f"{where} must be a JSON object of settings, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(f"unknown key(s) {unknown} in {where}; valid keys: {', '.join(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    hints = typing.get_type_hints(cls)
    try:
        for key, value in values.items():  # types first: the class's own checks compare values
            check_value(key, value, hints[key], where)
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc) if isinstance(exc, UsageError) else f"bad value in {where}: {exc}") from exc


CONFIG_KEYS = ("algo", "env", "imports", "family", "agent", "run", "metarl_version", "command")
"""The keys of a run's ``config.json`` (and of a ``--config`` file)."""


def read_json_config(file: Path, what: str) -> dict[str, Any]:
    """A config JSON object (``--config`` file or a run's ``config.json``), or a clear error."""
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {file}: cannot read it ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} {file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) - set(CONFIG_KEYS):
        extra = sorted(set(data) - set(CONFIG_KEYS)) if isinstance(data, dict) else type(data).__name__
        raise UsageError(f"{what} {file}: expected a JSON object with keys among {list(CONFIG_KEYS)}, got {extra}")
    for key in ("algo", "env"):
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"{what} {file}: {key!r} must be a string, got {data[key]!r}")
    return data


def load_config_file(path: str) -> dict[str, Any]:
    """Read a ``--config`` JSON file (the layout of a run's ``config.json``)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config {path}: no such file (expected a JSON file like a run's config.json)")
    return read_json_config(file, "--config")


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
    parsed instance, its values checked against their types and ranges. ``--help`` lists
    every flag with its default and meaning.
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
        sections = {name: getattr(parsed, name) for name in defaults}
        for section in sections.values():
            check_field_types(section)  # tyro reads "nan" and "inf" as floats
    except (TypeError, ValueError) as exc:  # a config class's own validation
        raise UsageError(str(exc)) from exc
    return sections


def first_pass(prog: str, argv: list[str], positional_run: bool = False) -> tuple[argparse.Namespace, list[str]]:
    """Pick out the flags that decide which other flags exist: algo, env, config, resume,
    and the user modules to import."""
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    run_dir = None
    if positional_run and argv and not argv[0].startswith("-"):
        # Only a leading bare word is the run directory: "--k 3" must not lend its value.
        run_dir, argv = argv[0], argv[1:]
    parser.add_argument("--algo", default=None)
    parser.add_argument("--env", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--import", dest="imports", action="append", default=[])
    first, rest = parser.parse_known_args(argv)
    first.run_dir = run_dir
    return first, rest


# ---------------------------------------------------------------------------------------------
# User modules
# ---------------------------------------------------------------------------------------------


def split_env(env: str) -> tuple[str | None, str]:
    """``"module:Name-v0"`` → ``("module", "Name-v0")``; a plain id has no module."""
    module, sep, family_id = env.rpartition(":")
    return (module, family_id) if sep and "/" not in module else (None, env)


def import_modules(modules: Sequence[str]) -> list[dict[str, str]]:
    """Import the user modules the command line names (they register families); returns what
    a run records of them: each module's name and the file it came from."""
    records = []
    for name in dict.fromkeys(modules):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"cannot import {name!r} ({exc}): run from the folder that holds {name}.py, or add "
                             "that folder to PYTHONPATH") from exc
        records.append({"module": name, "file": str(getattr(module, "__file__", "") or "")})
    return records


def recorded_modules(config: dict[str, Any], where: str) -> list[dict[str, str]]:
    """The user modules a saved config says its family came from (never imported here): its
    ``imports`` records, or the ``module:`` prefix of an ``env`` written by older versions."""
    records = config.get("imports", [])
    if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("module"), str)
                                                for r in records):
        raise UsageError(f"{where}: 'imports' must be a list of {{\"module\": ..., \"file\": ...}} records")
    module, _ = split_env(config.get("env", ""))
    if module and module not in [r["module"] for r in records]:
        records = [*records, {"module": module, "file": ""}]
    return records


def saved_family_id(config: dict[str, Any], where: str, imported: Sequence[str]) -> str:
    """The family id a saved config names, registered — without importing anything from the
    file: a family from a user module needs that module named on the command line."""
    _, family_id = split_env(config.get("env", ""))
    if not family_id:
        raise UsageError(f"{where} names no 'env' (a family id such as metarl/Bandit-v0)")
    missing = [r for r in recorded_modules(config, where) if r["module"] not in imported]
    try:
        family_spec(family_id)
    except UnknownIdError as exc:
        if not missing:
            raise
        files = "; ".join(f"{r['module']} was {r['file']}" for r in missing if r["file"])
        raise UsageError(
            f"{where} uses family {family_id} from {', '.join(repr(r['module']) for r in missing)}, which is not "
            f"imported: add {' '.join('--import ' + r['module'] for r in missing)} (metarl never imports a module "
            f"named in a file){'; ' + files if files else ''}") from exc
    return family_id


# ---------------------------------------------------------------------------------------------
# Building families and agents
# ---------------------------------------------------------------------------------------------


def family_default(env_id: str, overrides: dict[str, Any] | None = None) -> TaskFamily[Any]:
    """The family ``env_id`` built with its registered defaults (and ``overrides``), every
    argument checked against its declared type."""
    spec = family_spec(env_id)
    try:
        factory = spec.load()
    except MissingDependencyError as exc:
        raise UsageError(str(exc)) from exc
    if not isinstance(factory, type) or not dataclasses.is_dataclass(factory):
        raise UsageError(f"family {env_id} is not a dataclass, so its arguments cannot become flags")
    family: TaskFamily[Any] = from_dict(factory, {**spec.defaults, **(overrides or {})}, f"arguments of {env_id}")
    return family


def recommended_settings(family_cls: Any, agent_cls: Any) -> dict[str, Any]:
    """The family's recommended settings for the algorithm (:attr:`TaskFamily.recommended`),
    checked against the algorithm's config class so that a stale key fails loudly."""
    settings = dict(getattr(family_cls, "recommended", {}).get(agent_cls.name, {}))
    from_dict(agent_cls.config_class, settings, f"{family_cls.__name__}.recommended[{agent_cls.name!r}]")
    return settings


def resolve_algo_and_env(algo: str | None, env: str | None, config: dict[str, Any],
                         imported: Sequence[str] = ()) -> tuple[Any, str]:
    """The agent class and family id from flags, then the config file, then defaults.

    A ``module:Id`` given with ``--env`` imports the module (the user asked for it); one in a
    config file does not.
    """
    name = algo or config.get("algo") or "rl2"
    agent_cls = algo_spec(name).load()
    if env:
        module, env_id = split_env(env)
        if module:
            import_modules([module])
    elif config.get("env"):
        env_id = saved_family_id(config, "--config", imported)
    else:
        env_id = agent_cls.default_env
    family_spec(env_id)  # unknown ids fail here, naming the close matches
    return agent_cls, env_id


def build_agent(agent_cls: Any, config: Any, family: TaskFamily[Any], env_id: str, **kwargs: Any) -> Any:
    """Build an agent, turning its refusal of a family or config into a usage error."""
    try:
        return agent_cls(config, family, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--algo {agent_cls.name} on {env_id}: {exc}") from exc


USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, UnknownIdError, CheckpointError, DatasetError, MissingDependencyError,
)
"""Errors that mean bad input: reported in one paragraph, exit status 2."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a CLI entry point: a user error is printed in one paragraph without a traceback
    (exit status 2), divergence likewise (exit status 3); ``--debug`` anywhere on the
    command line shows the traceback instead."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        code = main()
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except DivergenceError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.exit(code or 0)
