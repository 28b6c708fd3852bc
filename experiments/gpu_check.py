"""One script for a GPU machine (under 5 minutes on one GPU; its CPU half runs anywhere): device
results against CPU on small cases, then throughput on the CPU and on the device in one run, and
the held-out score RL² reaches on the bandit k=10, n=100 within a few device minutes.

    python experiments/gpu_check.py                       # --device auto: the GPU if there is one
    python experiments/gpu_check.py --device cpu          # the CPU half alone (torch-on-CPU as the "device")
    python experiments/gpu_check.py --quick               # seconds: the script's test

Sections (each prints a markdown table):
1. agreement: every array family stepped on NumPy and on the device from the same tasks and states
   (the conformance check ``backend agreement``), and one RL² and one MAML-PG evaluation with
   the env on the host against the env on the device (same seed, greedy RL²): returns must match;
2. throughput, host CPU (NumPy env, one torch thread: this machine's defaults) against the device:
   env-only steps/s of the bandit at 65,536 sub-envs (random actions made on the env's side), RL²
   end to end (training iterations) on the bandit and the tabular MDP, MAML-PG on Nav2D, MAML
   (second order, vmap) on Omniglot-sized 5-way 1-shot Conv-4 tasks;
3. RL² bandit k=10, n=100 trained for ``--rl2-minutes`` on the device, scored on 1,000 held-out
   tasks beside UCB1 on the same tasks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from metarl import make_family  # noqa: E402
from metarl.agents.bandit_baselines import UCB1Agent, UCB1Config  # noqa: E402
from metarl.agents.maml_pg import MAMLPG, MAMLPGConfig  # noqa: E402
from metarl.agents.rl2 import RL2, RL2Config  # noqa: E402
from metarl.conformance import check_family  # noqa: E402
from metarl.core.seeding import task_rng  # noqa: E402
from metarl.core.stats import mean_ci95  # noqa: E402
from metarl.rl.array_family import ArrayRLFamily, make_vec_env  # noqa: E402

ARRAY_FAMILIES = ("metarl/Bandit-v0", "metarl/TabularMDP-v0", "metarl/Nav2D-v0", "metarl/Pendulum-v0",
                  "metarl/CartPole-v0", "metarl/HiddenGoalGrid-v0")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def agreement(device: torch.device, quick: bool) -> list[tuple[str, str, str]]:
    """The conformance suite's NumPy-against-device check of every array family, and the
    evaluations of RL² and MAML-PG with host and device envs."""
    rows = []
    checks = ("device env = NumPy env, exactly", "device env = NumPy env, in distribution")
    for env_id in ARRAY_FAMILIES:
        report = check_family(env_id, only=checks, device=device)
        for result in report.results:
            verdict = {True: "pass", None: f"skipped: {result.detail}", False: f"FAIL: {result.detail}"}[result.passed]
            rows.append((env_id, result.name, verdict))
    # Arms that pay 0 or 1 surely: the env draws no random numbers that differ between NumPy and
    # torch, so a greedy policy must take the same actions and returns on both.
    tasks = make_family("metarl/Bandit-v0", k=5, n=20).deterministic_tasks(64 if quick else 500, np.random.default_rng(0))
    returns = []
    for env_device in ("numpy", "agent"):
        agent = RL2(RL2Config(num_trials=32, sample_eval=False, env_device=env_device),
                    make_family("metarl/Bandit-v0", k=5, n=20), seed=0, device=device)
        returns.append(agent.evaluate(tasks, seed=1).scores)
    same = np.allclose(returns[0], returns[1])
    rows.append(("metarl/Bandit-v0", "RL² greedy evaluation on 0/1 arms, host env vs device env", "pass" if same else
                 f"FAIL: mean {returns[0].mean():.3f} vs {returns[1].mean():.3f}"))
    nav = make_family("metarl/Nav2D-v0", horizon=20)
    nav_tasks = nav.sample_tasks(8 if quick else 40, "test", task_rng(0, "test"))
    curves = []
    for env_device in ("numpy", "agent"):
        pg = MAMLPG(MAMLPGConfig(meta_batch=4, trajectories=4, env_device=env_device), nav, seed=0, device=device)
        curves.append(pg.evaluate(nav_tasks, seed=1).curve)
    # Sampled actions come from the same torch generator on either env, and Nav2D has no
    # randomness of its own: the curves agree to float rounding on the device.
    close = np.allclose(curves[0], curves[1], rtol=1e-3, atol=1e-3)
    rows.append(("metarl/Nav2D-v0", "MAML-PG evaluation (0..3 inner steps), host env vs device env",
                 "pass" if close else f"FAIL: max diff {np.abs(curves[0] - curves[1]).max():.2e}"))
    return rows


def env_only(env_id: str, num_envs: int, device: torch.device | None, steps: int) -> float:
    """Env steps/s of the batched env with random actions drawn where the env lives."""
    family: ArrayRLFamily[Any] = make_family(env_id)  # type: ignore[assignment]
    tasks = family.sample_tasks(num_envs, "train", task_rng(0, "train"))
    env = make_vec_env(family, num_envs, tasks, autoreset_mode=AutoresetMode.SAME_STEP, device=device)
    env.reset(seed=0)
    n_actions = int(family.action_space.n)
    if device is None:
        rng = np.random.default_rng(0)
        actions = [rng.integers(0, n_actions, num_envs) for _ in range(8)]
    else:
        g = torch.Generator(device=device).manual_seed(0)
        actions = [torch.randint(0, n_actions, (num_envs,), generator=g, device=device) for _ in range(8)]
    for i in range(5):
        env.step(actions[i % 8])
    sync(device or torch.device("cpu"))
    start = time.perf_counter()
    for i in range(steps):
        env.step(actions[i % 8])
    sync(device or torch.device("cpu"))
    return num_envs * steps / (time.perf_counter() - start)


def agent_steps_per_second(make: Any, iterations: int, device: torch.device) -> float:
    """Env steps/s of an RL agent's training iterations (after one warm-up iteration)."""
    agent = make()
    agent.train_iteration()
    sync(device)
    start, steps = time.perf_counter(), 0
    for _ in range(iterations):
        steps += agent.train_iteration().env_steps
    sync(device)
    return steps / (time.perf_counter() - start)


def maml_tasks_per_second(device: torch.device, meta_batch: int, iterations: int) -> float:
    """Second-order MAML (vmap) meta-iterations on 5-way 1-shot Conv-4 tasks: tasks/s."""
    import maml_speed

    setup = maml_speed.conv_setup(device, True)
    if meta_batch != 32:  # the same random episodes, tiled to the meta-batch
        reps = -(-meta_batch // 32)
        setup["batch"] = tuple(t.repeat(reps, *([1] * (t.dim() - 1)))[:meta_batch] for t in setup["batch"])
    setup["model"] = setup["model"].to(device)
    return meta_batch / maml_speed.time_it(maml_speed.vmap_meta_loss, setup, iterations)


def throughput(device: torch.device, quick: bool) -> list[tuple[str, str, float, float]]:
    """(what, size, CPU figure, device figure) rows."""
    cpu = torch.device("cpu")
    big = 4096 if quick else 65536
    rows = []
    steps = 5 if quick else 200
    rows.append(("bandit env only, env steps/s", f"{big:,} sub-envs",
                 env_only("metarl/Bandit-v0", big, None, steps), env_only("metarl/Bandit-v0", big, device, steps)))
    rows.append(("tabular MDP env only, env steps/s", f"{big:,} sub-envs",
                 env_only("metarl/TabularMDP-v0", big, None, steps), env_only("metarl/TabularMDP-v0", big, device, steps)))
    it = 1 if quick else 3
    bandit = make_family("metarl/Bandit-v0", k=10, n=100)
    cpu_trials, dev_trials = (64, 256) if quick else (1024, 16384)
    rows.append(("RL² end to end, bandit k=10 n=100, env steps/s", f"--num-trials {cpu_trials:,} / {dev_trials:,}",
                 agent_steps_per_second(lambda: RL2(RL2Config(num_trials=cpu_trials), bandit, seed=0), it, cpu),
                 agent_steps_per_second(lambda: RL2(RL2Config(num_trials=dev_trials, env_device="agent"), bandit,
                                                    seed=0, device=device), it, device)))
    mdp = make_family("metarl/TabularMDP-v0")
    rows.append(("RL² end to end, tabular MDP (10 episodes), env steps/s", f"--num-trials {cpu_trials:,} / {dev_trials:,}",
                 agent_steps_per_second(lambda: RL2(RL2Config(num_trials=cpu_trials), mdp, seed=0), it, cpu),
                 agent_steps_per_second(lambda: RL2(RL2Config(num_trials=dev_trials, env_device="agent"), mdp,
                                                    seed=0, device=device), it, device)))
    nav = make_family("metarl/Nav2D-v0")
    cpu_mb, dev_mb = (4, 8) if quick else (20, 160)
    rows.append(("MAML-PG end to end, Nav2D, env steps/s", f"--meta-batch {cpu_mb} / {dev_mb} x 20 trajectories",
                 agent_steps_per_second(lambda: MAMLPG(MAMLPGConfig(meta_batch=cpu_mb), nav, seed=0), it, cpu),
                 agent_steps_per_second(lambda: MAMLPG(MAMLPGConfig(meta_batch=dev_mb, env_device="agent"), nav,
                                                       seed=0, device=device), it, device)))
    mb_cpu, mb_dev = (4, 8) if quick else (32, 512)
    rows.append(("MAML Conv-4 5-way 1-shot, second order, tasks/s", f"meta-batch {mb_cpu} / {mb_dev}",
                 maml_tasks_per_second(cpu, mb_cpu, 1 if quick else 5),
                 maml_tasks_per_second(device, mb_dev, 1 if quick else 10)))
    return rows


def rl2_score(device: torch.device, minutes: float, quick: bool) -> tuple[float, float, float, float, int]:
    """RL² on the bandit k=10, n=100 for ``minutes`` on ``device``; its score and UCB1's on the
    same 1,000 held-out tasks (means, 95% CIs) and the env steps trained."""
    family = make_family("metarl/Bandit-v0", k=10, n=100)
    trials = 64 if quick else (4096 if device.type == "cuda" else 1024)
    agent = RL2(RL2Config(num_trials=trials, env_device="agent" if device.type == "cuda" else "auto",
                          total_env_steps=10**12), family, seed=0, device=device)
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        agent.train_iteration()
    tasks = family.sample_tasks(100 if quick else 1000, "test", task_rng(0, "test"))
    rl2 = agent.evaluate(tasks, seed=1).scores
    ucb = UCB1Agent(UCB1Config(), family, seed=0).evaluate(tasks, seed=1).scores
    (m, c), (um, uc) = mean_ci95(rl2), mean_ci95(ucb)
    return float(m), float(c), float(um), float(uc), agent.env_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (the GPU if any), cuda, or cpu")
    parser.add_argument("--rl2-minutes", type=float, default=2.5, help="RL² training time on the device (section 3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "torch on the CPU"
    load = os.getloadavg()[0]
    began = time.monotonic()
    print(f"device: {device} ({name}); host {os.cpu_count()} CPU cores, one torch thread; torch {torch.__version__}; "
          f"load average {load:.2f}\n")
    print("| family | check | result |\n|---|---|---|")
    for row in agreement(device, args.quick):
        print("| " + " | ".join(row) + " |")
    print("\n| measure | size (CPU / device) | CPU (NumPy env) | device | device / CPU |\n|---|---|---|---|---|")
    for what, size, c, d in throughput(device, args.quick):
        print(f"| {what} | {size} | {c:,.0f} | {d:,.0f} | {d / c:.1f}x |")
    minutes = 0.05 if args.quick else args.rl2_minutes
    m, c, um, uc, steps = rl2_score(device, minutes, args.quick)
    print(f"\nRL² bandit k=10 n=100 after {minutes:g} minutes on {device} ({steps:,} env steps): "
          f"{m:.2f} ± {c:.2f} on the held-out tasks; UCB1 on the same tasks {um:.2f} ± {uc:.2f}")
    print(f"\nwhole script: {(time.monotonic() - began) / 60:.1f} minutes; load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
