"""Run directories and checkpoints: creating a run directory, writing and reading
checkpoints atomically, and loading a run back (its config and its agent).

A run directory ``runs/<family>__<algo>__s<seed>__<time>/`` holds ``config.json`` (the
resolved config, also a valid ``--config`` file), TensorBoard event files,
``checkpoints/latest.pt`` and ``eval/`` (JSON reports and PNG plots).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from metarl.core.agent import Agent
from metarl.core.checks import nonfinite_entries
from metarl.core.errors import CheckpointError, UsageError
from metarl.core.registry import algo_spec
from metarl.core.task import TaskFamily
from metarl.core.version import __version__
from metarl.run.config import RunConfig, build_agent, family_default, from_dict, read_json_config, saved_family_id

CHECKPOINT = "latest.pt"
CHECKPOINT_FORMAT = 1


def new_run_dir(logdir: str, family_id: str, algo: str, seed: int) -> Path:
    """Create ``<logdir>/<family>__<algo>__s<seed>__<time>/``, unique even when several
    processes start in the same second (``mkdir`` either creates a name or fails)."""
    root = Path(logdir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--logdir {logdir}: cannot create run directories there ({exc})") from exc
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', family_id)}__{algo}__s{seed}__{stamp}"
    for i in range(10_000):
        path = base if i == 0 else Path(f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"--logdir {logdir}: cannot create run directories there ({exc})") from exc
        (path / "checkpoints").mkdir()
        (path / "eval").mkdir()
        return path
    raise UsageError(f"--logdir {logdir}: 10,000 run directories named {base.name} already exist")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file intact)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``: no
    code in it can run), or raise a clear error."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected checkpoints/{CHECKPOINT} written by metarl.train)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("agent"), dict):
        raise CheckpointError(f"{path} is not a metarl checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def restore_agent(agent: Agent, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's agent state into ``agent``, refusing one of another algorithm or
    configuration, and one whose parameters are not finite (a diverged run)."""
    saved = state.get("algo")
    if saved is not None and saved != agent.name:
        raise CheckpointError(f"{path} holds a {saved} agent, not a {agent.name} one")
    bad = nonfinite_entries(state["agent"])
    if bad:
        raise CheckpointError(f"{path} holds non-finite values ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): "
                              "the run diverged; use an earlier run or train again with a smaller learning rate")
    try:
        agent.load_state_dict(state["agent"])
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path} does not fit a {agent.name} agent of this run's config.json "
                              f"({type(exc).__name__}: {exc})") from exc


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``config.json``, or a clear error saying what was expected."""
    file = Path(run_dir) / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{run_dir} has no config.json: expected a run directory created by python -m metarl.train")
    return read_json_config(file, "run config")


def write_run_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Rewrite a run directory's ``config.json`` atomically (a resume that raised its budget)."""
    file = Path(run_dir) / "config.json"
    tmp = file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, file)


def config_json(algo: str, family_id: str, family: TaskFamily[Any], agent_config: Any, run: RunConfig,
                argv: list[str], imports: list[dict[str, str]]) -> str:
    """The resolved config saved as ``config.json`` (also a valid ``--config`` file), as
    standard JSON (no NaN). ``imports`` records the user modules the family came from."""
    return json.dumps({
        "algo": algo,
        "env": family_id,
        "imports": imports,
        "family": family.kwargs(),
        "agent": dataclasses.asdict(agent_config),
        "run": dataclasses.asdict(run),
        "metarl_version": __version__,
        "command": " ".join(["python -m metarl.train", *argv]),
    }, indent=2, allow_nan=False) + "\n"


@dataclasses.dataclass
class RunSpec:
    """A run directory's ``config.json`` resolved into what its agent is built from."""

    run_dir: Path
    env_id: str
    agent_cls: Any
    family: TaskFamily[Any]
    agent_config: Any
    run: RunConfig

    def build_agent(self, device: torch.device | str = "cpu") -> Agent:
        """A fresh agent of the run (no checkpoint loaded)."""
        agent: Agent = build_agent(self.agent_cls, self.agent_config, self.family, self.env_id,
                                   seed=self.run.seed, device=device)
        return agent


def load_run(run_dir: str | os.PathLike[str], imported: Sequence[str] = ()) -> RunSpec:
    """Read and resolve a run directory's ``config.json``; errors name what was expected.

    Nothing named in the file is imported: a family from a user module needs the module in
    ``imported`` (``--import`` on the command line), and the error says so.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    where = f"{run_dir}/config.json"
    for key in ("algo", "env"):
        if not isinstance(cfg.get(key), str):
            raise CheckpointError(f"{where} has no {key!r} string: expected a config.json written by metarl.train")
    agent_cls = algo_spec(cfg["algo"]).load()
    env_id = saved_family_id(cfg, where, imported)
    return RunSpec(
        run_dir=run_dir,
        env_id=env_id,
        agent_cls=agent_cls,
        family=family_default(env_id, cfg.get("family", {})),
        agent_config=from_dict(agent_cls.config_class, cfg.get("agent", {}), f"the agent section of {where}"),
        run=from_dict(RunConfig, cfg.get("run", {}), f"the run section of {where}"),
    )
