"""The training loop every agent shares: seeding, devices, logging, periodic evaluation on
held-out tasks, atomic checkpoints, resume, a clean stop on Ctrl-C and SIGTERM, and the
divergence guard."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from metarl.core.agent import Agent, EvalResult
from metarl.core.checks import flag, nonfinite_entries
from metarl.core.distributed import (
    all_reduce_sum,
    any_process,
    gather_objects,
    init_from_env,
    process_device,
    split_evenly,
    world,
)
from metarl.core.errors import DivergenceError, UsageError
from metarl.core.seeding import task_rng
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, restore_agent, save_checkpoint
from metarl.run.config import RunConfig
from metarl.run.logger import RunLogger, SilentLogger, write_eval


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA device; use --device auto or cpu")
    return torch.device(device)


def setup_torch(run: RunConfig) -> torch.device:
    """Seed torch and set its CPU threads; join torchrun's process group when launched by it;
    return the device to train on (under torchrun with CUDA, this process's GPU)."""
    device = resolve_device(run.device)
    init_from_env(device)
    device = process_device(device)
    torch.manual_seed(run.seed)
    if device.type == "cpu":
        torch.set_num_threads(run.threads)
    return device


def remaining_seconds(progress: float, elapsed: float, evaluated: bool, eval_share: float,
                      final_eval: float | None) -> float | None:
    """Wall-clock seconds left in a run, periodic and final evaluations included (``None``
    before any progress).

    ``elapsed`` (training and the periodic evaluations so far) grows in proportion to the
    budget spent, since periodic evaluation keeps to its share of the training time; before
    the first evaluation (``evaluated`` false) that share (``eval_share``, 0 when periodic
    evaluation is off) is added. ``final_eval`` is the last periodic evaluation's duration,
    which the final evaluation (the same held-out tasks) repeats.
    """
    if progress <= 0.0:
        return None
    left = elapsed * (1.0 - progress) / progress
    if not evaluated:
        left *= 1.0 + eval_share
    return left + (final_eval or 0.0)


class _Bar(tqdm):  # type: ignore[type-arg]
    """tqdm whose ``{eta}`` is the trainer's estimate (tqdm's own counts only bar updates)."""

    eta: float | None = None

    @property
    def format_dict(self) -> dict[str, Any]:
        d = dict(super().format_dict)
        d["eta"] = "?" if self.eta is None else tqdm.format_interval(self.eta)
        return d


def concat_results(results: list[EvalResult]) -> EvalResult:
    """One evaluation from the results of parts of its tasks, in order (the data-parallel
    processes' parts)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    return dataclasses.replace(first, curve=np.concatenate([r.curve for r in results]),
                               scores=np.concatenate([r.scores for r in results]))


class Trainer:
    """Drives one agent's training in a run directory.

    Under torchrun every process runs this loop in step: each trains on its share of the
    meta-batch, rank 0's decisions (stop, evaluate, checkpoint) and any process's signal apply to
    all, evaluations split the held-out tasks across the processes and gather the results, and
    rank 0 alone writes logs, evaluation files and checkpoints (which hold every process's random
    streams, so a resumed run continues each).
    """

    def __init__(self, agent: Agent, algo: str, family_id: str, run: RunConfig, run_dir: Path):
        self.agent, self.algo, self.run, self.run_dir = agent, algo, run, Path(run_dir)
        self.world = world()
        self.family_id = family_id
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self._signal = 0
        self._saved_iteration: int | None = None
        self._eval_seconds: float | None = None  # how long the last periodic evaluation took
        self._eval_end = 0.0  # training time at its end
        self.final_report: dict[str, Any] | None = None
        self.final_result: EvalResult | None = None
        self.eval_task_list: list[Any] = []
        self.ood_task_list: list[Any] = []
        self._last_eval: dict[str, float] = {}

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / CHECKPOINT

    def state_dict(self) -> dict[str, Any]:
        agent = self.agent.state_dict()
        state: dict[str, Any] = {
            "algo": self.algo,
            "agent": agent,
            "trainer": {"iteration": self.iteration, "env_steps": self.env_steps, "elapsed": self.elapsed},
        }
        if self.world.size > 1:  # the other processes' states differ from rank 0's in their random streams
            state["processes"] = self.world.size
            state["rank_agents"] = gather_objects(agent)[1:]
        return state

    def restore(self) -> None:
        """Continue from the run directory's latest checkpoint (every process reads it)."""
        state = load_checkpoint(self.checkpoint_path)
        saved = int(state.get("processes", 1))
        if saved != self.world.size:
            raise UsageError(f"{self.run_dir} was trained by {saved} process(es) and this resume has "
                             f"{self.world.size}: each process's random streams are in the checkpoint, so resume "
                             f"with the same number ({'torchrun --nproc_per_node ' + str(saved) if saved > 1 else 'python'}"
                             " -m metarl.train --resume ...)")
        if self.world.rank > 0:
            state = {**state, "agent": state["rank_agents"][self.world.rank - 1]}
        restore_agent(self.agent, state, self.checkpoint_path)
        t = state["trainer"]
        self.iteration, self.env_steps, self.elapsed = int(t["iteration"]), int(t["env_steps"]), float(t["elapsed"])
        self._saved_iteration = self.iteration

    def save(self) -> None:
        """Checkpoint atomically, unless the agent's state holds non-finite values (then the last
        good checkpoint stays, and training stops: :class:`DivergenceError`)."""
        state = self.state_dict()
        bad = nonfinite_entries(state["agent"])  # the same on every process: they hold the same parameters
        if bad:
            raise DivergenceError(f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}")
        if self.world.main:
            save_checkpoint(self.checkpoint_path, state)
        self._saved_iteration = self.iteration

    def _step(self) -> int:
        return self.env_steps or self.iteration

    def evaluate(self, logger: RunLogger, final: bool) -> dict[str, Any]:
        """Evaluate on the run's held-out test tasks; log, and write files when final."""
        if not self.eval_task_list:
            self.eval_task_list = self._tasks("test")
        result, report = self._score(logger, "eval", self.eval_task_list, "test", "held-out tasks")
        self._last_eval = {"eval": report["score"]["mean"]}
        if final and self.world.main:
            self.final_result = result
            write_eval(result, report, self.run_dir / "eval" / "final_test.json",
                       self.run_dir / "eval" / "final_test.png", f"{self.family_id} {self.algo} (test)")
        if self.run.eval_ood or self.run.eval_shift:
            self.evaluate_ood(logger, final)
        return report

    def evaluate_ood(self, logger: RunLogger, final: bool) -> None:
        """The same evaluation on out-of-distribution tasks (``--eval-shift`` on the test split,
        else the ``ood`` split), logged under ``eval_ood/`` so both curves share a chart."""
        shift = self.run.eval_shift
        split = "test" if shift else "ood"
        if not self.ood_task_list:
            self.ood_task_list = self._tasks(split, shift)
        what = " ".join(shift) if shift else "ood split"
        result, report = self._score(logger, "eval_ood", self.ood_task_list, split, what)
        report["shift"] = list(shift)
        self._last_eval["ood"] = report["score"]["mean"]
        if final and self.world.main:
            write_eval(result, report, self.run_dir / "eval" / "final_ood.json", self.run_dir / "eval" / "final_ood.png",
                       f"{self.family_id} {self.algo} ({what})")

    def _tasks(self, split: str, shift: tuple[str, ...] = ()) -> list[Any]:
        """The run's evaluation tasks of ``split`` (as many as the agent evaluates)."""
        count = self.agent.eval_task_count(self.run.eval_tasks)
        return self.agent.family.sample_tasks(count, split, task_rng(self.run.seed, split), shift=shift)

    def _score(self, logger: RunLogger, prefix: str, tasks: list[Any], split: str,
               what: str) -> tuple[EvalResult, dict[str, Any]]:
        """Evaluate on ``tasks``; log the score with its 95% interval and the curve under ``prefix``.

        Under data parallelism each process evaluates its part of the tasks (with a seed of its
        own) and every process gets the whole result."""
        if self.world.size > 1:
            part = self.agent.evaluate(split_evenly(tasks), seed=self.eval_seed + 7919 * self.world.rank)
            result = concat_results(gather_objects(part))
        else:
            result = self.agent.evaluate(tasks, seed=self.eval_seed)
        report = result.report(self.family_id, self.algo, split)
        score, step = report["score"], self._step()
        logger.scalars({f"{prefix}/score": score["mean"], f"{prefix}/score_lo": score["mean"] - score["ci95"],
                        f"{prefix}/score_hi": score["mean"] + score["ci95"]}, step)
        logger.curve(result, prefix, step, f"{self.family_id} {self.algo}: {what}, step {step}")
        return result, report

    @property
    def eval_seed(self) -> int:
        """The seed of held-out evaluations (the tasks come from ``task_rng(seed, "test")``)."""
        return self.run.seed + 1

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal:  # a second signal means: stop now
            raise KeyboardInterrupt
        self._signal = signum
        name = "interrupt" if signum == signal.SIGINT else "terminate signal"
        print(f"\n{name}: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def _diverged(self, cause: str) -> DivergenceError:
        """The error that stops a diverged run: what went wrong, where, and what to try."""
        rates = [f"{flag(f.name)} {getattr(self.agent.config, f.name):g}" for f in dataclasses.fields(self.agent.config)
                 if "lr" in f.name.split("_") and isinstance(getattr(self.agent.config, f.name), float)]
        kept = (f"the last good checkpoint (iteration {self._saved_iteration}) is {self.checkpoint_path}"
                if self._saved_iteration is not None else "no checkpoint was written")
        hint = f"; likely cause: a step size too large ({', '.join(rates)})" if rates else ""
        return DivergenceError(f"training diverged at iteration {self.iteration}: {cause}{hint}. {kept}")

    def progress(self) -> float:
        """Fraction of the budget spent: the agent's (steps or iterations) or the time limit's,
        whichever is further along."""
        by_time = self.elapsed / self.run.time_limit if self.run.time_limit else 0.0
        return min(1.0, max(self.agent.progress(), by_time))

    def import_flags(self) -> str:
        """`` --import M`` for each user module the run's family came from (in ``config.json``)."""
        try:
            records = json.loads((self.run_dir / "config.json").read_text()).get("imports", [])
        except (OSError, ValueError):
            return ""
        return "".join(f" --import {r['module']}" for r in records if isinstance(r, dict) and "module" in r)

    def larger_budget(self) -> str:
        """The flag and value that would double the budget that stopped this run."""
        if self.agent.progress() < 1.0 and self.run.time_limit:
            return f"--time-limit {2 * self.run.time_limit:g}"
        name = self.agent.budget_fields[0]
        return f"{flag(name)} {2 * getattr(self.agent.config, name)}"

    def remaining(self) -> float | None:
        """The progress bar's ETA in seconds: training, periodic evaluations and the final one
        (:func:`remaining_seconds`)."""
        periodic = self.run.eval_budget if self.run.eval_every is None else 0.0
        return remaining_seconds(self.progress(), self.elapsed, self._eval_seconds is not None, periodic,
                                 self._eval_seconds)

    def _evaluation_due(self) -> bool:
        """Periodic evaluation: every ``eval_every`` iterations, or by default whenever it keeps
        held-out evaluation within ``eval_budget`` of the training time (the first after 30 s)."""
        if self.run.eval_every is not None:
            return bool(self.run.eval_every) and self.iteration % self.run.eval_every == 0
        trained = self.elapsed - self._eval_end
        if self._eval_seconds is None:
            return trained >= 30.0
        return self._eval_seconds <= self.run.eval_budget * trained

    def train(self, resumed: bool = False) -> int:
        """Train until the budget, the time limit, Ctrl-C or SIGTERM; return the exit status
        (0; 130 or 143 after a signal, with a checkpoint). A non-finite loss or parameter raises
        :class:`DivergenceError` without overwriting the last good checkpoint; a fresh run that
        fails before its first iteration leaves no run directory."""
        if resumed and self.progress() >= 1.0:
            print(f"{self.run_dir} finished at iteration {self.iteration}; its report is "
                  f"{self.run_dir / 'eval' / 'final_test.json'}. To train on, resume with a larger budget: "
                  f"python -m metarl.train --resume {self.run_dir}{self.import_flags()} {self.larger_budget()}; to "
                  f"evaluate again: python -m metarl.evaluate {self.run_dir}{self.import_flags()}", file=sys.stderr)
            return 0
        logger = (RunLogger if self.world.main else SilentLogger)(self.run_dir,
                                                                   purge_step=self._step() + 1 if resumed else None)
        if not resumed:
            logger.text("config", "```\n" + (self.run_dir / "config.json").read_text() + "\n```")
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        bar = _Bar(total=100, initial=round(100 * self.progress()), disable=not self.run.progress or not self.world.main,
                   bar_format="{l_bar}{bar}| {elapsed}<{eta} {postfix}", dynamic_ncols=True)
        start = time.monotonic() - self.elapsed
        self._eval_end = self.elapsed
        last_ckpt = time.monotonic()
        completed = False
        stop_reason = ""
        try:
            while not self._agreed_signal():
                self.elapsed = time.monotonic() - start
                if self._agreed(self.progress() >= 1.0):
                    if self.agent.progress() < 1.0:
                        stop_reason = f"time limit of {self.run.time_limit:g} s reached"
                    break
                t0 = time.perf_counter()
                try:
                    with torch.autocast(self.agent.device.type, dtype=torch.bfloat16, enabled=self.run.amp):
                        stats = self.agent.train_iteration()
                except DivergenceError as exc:
                    raise self._diverged(str(exc)) from exc
                dt = time.perf_counter() - t0
                self.iteration += 1
                self.env_steps += stats.env_steps
                self.elapsed = time.monotonic() - start
                bad = [k for k, v in stats.scalars.items() if not math.isfinite(v)]
                if any_process(bool(bad)):
                    bad = bad or ["a scalar on another process"]
                    raise self._diverged(f"{', '.join(bad[:3])} {'is' if len(bad) == 1 else 'are'} not finite")
                scalars = dict(stats.scalars)
                scalars["time/iteration_seconds"] = dt
                scalars["time/elapsed_seconds"] = self.elapsed
                if stats.env_steps:
                    scalars["time/env_steps_per_second"] = stats.env_steps / dt
                    scalars["time/env_steps"] = self.env_steps
                logger.scalars(scalars, self._step())
                if stats.curve is not None:
                    logger.curve(stats.curve, "adaptation", self._step(), f"{self.family_id} {self.algo}: training tasks")
                # The last iteration's evaluation is the final one, below: no second point at the same step.
                if self.agent.progress() < 1.0 and self._agreed(self._evaluation_due()):
                    began = time.monotonic()
                    self.evaluate(logger, final=False)
                    self._eval_seconds = time.monotonic() - began
                    logger.scalars({"time/eval_seconds": self._eval_seconds}, self._step())
                    self.elapsed = self._eval_end = time.monotonic() - start
                if self._agreed(time.monotonic() - last_ckpt >= self.run.checkpoint_every):
                    self._save_or_diverge()
                    last_ckpt = time.monotonic()
                bar.n = round(100 * self.progress())
                bar.eta = self.remaining()
                post = {**stats.headline, **self._last_eval}
                if stats.env_steps:
                    post["sps"] = stats.env_steps / dt
                bar.set_postfix({k: f"{v:.4g}" for k, v in post.items()}, refresh=False)
                bar.update(0)
            self._save_or_diverge()
            completed = True
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            bar.close()
            if not completed:
                logger.close()
                if not resumed and self.iteration == 0 and self.world.main:
                    shutil.rmtree(self.run_dir, ignore_errors=True)  # a failed start leaves nothing behind
        if stop_reason and self.world.main:
            print(stop_reason, file=sys.stderr)
        if self._signal:
            logger.close()
            if not self.world.main:
                return 128 + int(self._signal)
            imports = self.import_flags()
            print(f"checkpoint saved at iteration {self.iteration}. Continue with: python -m metarl.train --resume "
                  f"{self.run_dir}{imports}\nor evaluate what it has learned: python -m metarl.evaluate "
                  f"{self.run_dir}{imports}", file=sys.stderr)
            return 128 + int(self._signal)
        report = self.evaluate(logger, final=True)
        self._write_hparams(logger, report)
        logger.close()
        self.final_report = report
        if self.world.main:
            print(json.dumps({"run_dir": str(self.run_dir), "score_name": report["score_name"], "score": report["score"]}))
        return 0

    def _agreed(self, decision: bool) -> bool:
        """Rank 0's ``decision`` on every process (the clocks of the processes differ)."""
        if self.world.size == 1:
            return decision
        return bool(all_reduce_sum(torch.tensor([float(decision and self.world.main)])).item() > 0)

    def _agreed_signal(self) -> bool:
        """Whether some process received Ctrl-C or SIGTERM; every process then takes its signal."""
        if self.world.size == 1:
            return bool(self._signal)
        signals = all_reduce_sum(torch.tensor([float(self._signal)]) if self._signal else torch.zeros(1))
        if not self._signal and float(signals.item()) > 0:
            self._signal = signal.SIGTERM
        return bool(self._signal)

    def _write_hparams(self, logger: RunLogger, report: dict[str, Any]) -> None:
        """The run's config (``config.json`` less the command and imports) and final figures, for
        TensorBoard's HParams tab."""
        config = json.loads((self.run_dir / "config.json").read_text())
        config = {k: v for k, v in config.items() if k not in ("command", "imports")}
        metrics = {"score": report["score"]["mean"], "score_ci95": report["score"]["ci95"],
                   "env_steps": self.env_steps, "train_seconds": self.elapsed, "iterations": self.iteration}
        logger.hparams(config, metrics, self._step())

    def _save_or_diverge(self) -> None:
        try:
            self.save()
        except DivergenceError as exc:
            raise self._diverged(str(exc)) from exc
