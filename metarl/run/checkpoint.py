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
from pathlib import Path
from typing import Any

import torch

from metarl.core.agent import Agent
from metarl.core.registry import algo_spec
from metarl.core.task import TaskFamily
from metarl.core.version import __version__
from metarl.run.config import RunConfig, build_agent, family_default, from_dict

CHECKPOINT = "latest.pt"
CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint or run directory that is missing or unreadable."""


def new_run_dir(logdir: str, family_id: str, algo: str, seed: int) -> Path:
    """Create ``<logdir>/<family>__<algo>__s<seed>__<time>/`` (unique)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(logdir) / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', family_id)}__{algo}__s{seed}__{stamp}"
    path, i = base, 1
    while path.exists():
        path, i = Path(f"{base}-{i}"), i + 1
    (path / "checkpoints").mkdir(parents=True)
    (path / "eval").mkdir()
    return path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the old file intact)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, or raise a clear error."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected checkpoints/{CHECKPOINT} written by metarl.train)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "agent" not in state:
        raise CheckpointError(f"{path} is not a metarl checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """A run directory's ``config.json``, or a clear error saying what was expected."""
    file = Path(run_dir) / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{run_dir} has no config.json: expected a run directory created by python -m metarl.train")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} is corrupt: {exc}") from exc


def config_json(algo: str, family_id: str, family: TaskFamily[Any], agent_config: Any, run: RunConfig,
                argv: list[str]) -> dict[str, Any]:
    """The resolved config saved as ``config.json`` (also a valid ``--config`` file)."""
    return {
        "algo": algo,
        "env": family_id,
        "family": family.kwargs(),
        "agent": dataclasses.asdict(agent_config),
        "run": dataclasses.asdict(run),
        "metarl_version": __version__,
        "command": " ".join(["python -m metarl.train", *argv]),
    }


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


def load_run(run_dir: str | os.PathLike[str]) -> RunSpec:
    """Read and resolve a run directory's ``config.json``; errors name what was expected."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    where = f"{run_dir}/config.json"
    for key in ("algo", "env"):
        if not isinstance(cfg.get(key), str):
            raise CheckpointError(f"{where} has no {key!r} string: expected a config.json written by metarl.train")
    agent_cls = algo_spec(cfg["algo"]).load()
    return RunSpec(
        run_dir=run_dir,
        env_id=cfg["env"],
        agent_cls=agent_cls,
        family=family_default(cfg["env"], cfg.get("family", {})),
        agent_config=from_dict(agent_cls.config_class, cfg.get("agent", {}), where),
        run=from_dict(RunConfig, cfg.get("run", {}), where),
    )
