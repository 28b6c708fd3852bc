"""The training loop every agent shares: run directories, seeding, devices, logging,
periodic evaluation on held-out tasks, atomic checkpoints, resume and clean Ctrl-C."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from metarl.core.agent import Agent
from metarl.core.seeding import task_rng
from metarl.run.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from metarl.run.config import RunConfig, UsageError
from metarl.run.logger import RunLogger, write_eval


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda, but torch sees no CUDA device; use --device auto or cpu")
    return torch.device(device)


def setup_torch(run: RunConfig) -> torch.device:
    """Seed torch and set its CPU threads; return the device to train on."""
    device = resolve_device(run.device)
    torch.manual_seed(run.seed)
    if device.type == "cpu":
        torch.set_num_threads(run.threads)
    return device


class Trainer:
    """Drives one agent's training in a run directory."""

    def __init__(self, agent: Agent, algo: str, family_id: str, run: RunConfig, run_dir: Path):
        self.agent, self.algo, self.run, self.run_dir = agent, algo, run, Path(run_dir)
        self.family_id = family_id
        self.iteration = 0
        self.env_steps = 0
        self.elapsed = 0.0
        self._interrupted = False
        self._last_eval: dict[str, float] = {}

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / CHECKPOINT

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "trainer": {"iteration": self.iteration, "env_steps": self.env_steps, "elapsed": self.elapsed},
        }

    def restore(self) -> None:
        """Continue from the run directory's latest checkpoint."""
        state = load_checkpoint(self.checkpoint_path)
        self.agent.load_state_dict(state["agent"])
        t = state["trainer"]
        self.iteration, self.env_steps, self.elapsed = int(t["iteration"]), int(t["env_steps"]), float(t["elapsed"])

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.state_dict())

    def _step(self) -> int:
        return self.env_steps or self.iteration

    def evaluate(self, logger: RunLogger, final: bool) -> dict[str, Any]:
        """Evaluate on the run's held-out test tasks; log, and write files when final."""
        tasks = self.agent.family.sample_tasks(self.run.eval_tasks, "test", task_rng(self.run.seed, "test"))
        result = self.agent.evaluate(tasks, seed=self.run.seed + 1)
        report = result.report(self.family_id, self.algo, "test")
        score = report["score"]
        logger.scalars(
            {"eval/score": score["mean"], "eval/score_lo": score["mean"] - score["ci95"],
             "eval/score_hi": score["mean"] + score["ci95"]},
            self._step(),
        )
        logger.curve(result, "eval", self._step(), f"{self.family_id} {self.algo}: held-out tasks, step {self._step()}")
        self._last_eval = {"eval": score["mean"]}
        if final:
            write_eval(result, report, self.run_dir / "eval" / "final_test.json",
                       self.run_dir / "eval" / "final_test.png", f"{self.family_id} {self.algo} (test)")
        return report

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # a second Ctrl-C means: stop now
            raise KeyboardInterrupt
        self._interrupted = True
        print("\ninterrupt: finishing this iteration and saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def train(self, resumed: bool = False) -> int:
        """Train until the budget, the time limit or Ctrl-C; return the exit status."""
        logger = RunLogger(self.run_dir, purge_step=self._step() + 1 if resumed else None)
        if not resumed:
            logger.text("config", "```\n" + (self.run_dir / "config.json").read_text() + "\n```")
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(total=100, initial=round(100 * self.agent.progress()), disable=not self.run.progress,
                   bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", dynamic_ncols=True)
        start = time.monotonic() - self.elapsed
        last_ckpt = time.monotonic()
        try:
            while self.agent.progress() < 1.0 and not self._interrupted:
                if self.run.time_limit and time.monotonic() - start >= self.run.time_limit:
                    print(f"time limit of {self.run.time_limit:g} s reached", file=sys.stderr)
                    break
                t0 = time.perf_counter()
                stats = self.agent.train_iteration()
                dt = time.perf_counter() - t0
                self.iteration += 1
                self.env_steps += stats.env_steps
                self.elapsed = time.monotonic() - start
                scalars = dict(stats.scalars)
                scalars["time/iteration_seconds"] = dt
                scalars["time/elapsed_seconds"] = self.elapsed
                if stats.env_steps:
                    scalars["time/env_steps_per_second"] = stats.env_steps / dt
                    scalars["time/env_steps"] = self.env_steps
                logger.scalars(scalars, self._step())
                if stats.curve is not None:
                    logger.curve(stats.curve, "adaptation", self._step(), f"{self.family_id} {self.algo}: training tasks")
                if self.run.eval_every and self.iteration % self.run.eval_every == 0:
                    self.evaluate(logger, final=False)
                if time.monotonic() - last_ckpt >= self.run.checkpoint_every:
                    self.save()
                    last_ckpt = time.monotonic()
                bar.n = round(100 * self.agent.progress())
                post = {**stats.headline, **self._last_eval}
                if stats.env_steps:
                    post["sps"] = stats.env_steps / dt
                bar.set_postfix({k: f"{v:.4g}" for k, v in post.items()}, refresh=False)
                bar.update(0)
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
            self.save()
        if self._interrupted:
            logger.close()
            print(f"checkpoint saved; continue with: python -m metarl.train --resume {self.run_dir}", file=sys.stderr)
            return 130
        report = self.evaluate(logger, final=True)
        logger.close()
        print(json.dumps({"run_dir": str(self.run_dir), "score_name": report["score_name"], "score": report["score"]}))
        return 0
