"""Classical bandit baselines beside Table 1 of the RL² paper (Duan et al. 2016).

Runs ``python -m metarl.evaluate --algo A --env metarl/Bandit-v0 --k K --n N --num-tasks 10000``
for every baseline and setting (the evaluation CLI itself, in-process), writes each JSON
report under ``experiments/results/bandit_baselines/`` and prints a markdown table of mean
total reward per trial with 95% confidence intervals.

    python experiments/bandit_baselines.py [--num-tasks 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

from metarl import evaluate
from metarl.agents.bandit_baselines import DEFAULT_MAX_STATES, bayes_optimal_num_states, bayes_optimal_value

SETTINGS = [(5, 10), (5, 100), (10, 100)]
ALGOS = ["random", "greedy", "epsilon_greedy", "ucb1", "thompson", "bayes_optimal"]
# Duan et al. 2016, Table 1 (1,000 bandits per cell; UCB1 and epsilon-greedy tuned per setting).
PAPER = {
    (5, 10): {"random": 5.0, "gittins": 6.6, "thompson": 5.7, "ots": 6.5, "ucb1": 6.7, "epsilon_greedy": 6.6, "greedy": 6.6, "rl2": 6.7},
    (5, 100): {"random": 49.9, "gittins": 78.3, "thompson": 74.7, "ots": 77.9, "ucb1": 78.0, "epsilon_greedy": 75.4, "greedy": 74.8, "rl2": 78.7},
    (10, 100): {"random": 49.9, "gittins": 82.8, "thompson": 76.7, "ots": 81.4, "ucb1": 82.4, "epsilon_greedy": 77.4, "greedy": 77.1, "rl2": 83.5},
}
OUT = Path(__file__).parent / "results" / "bandit_baselines"


def run(algo: str, k: int, n: int, num_tasks: int) -> dict | None:
    out = OUT / f"{algo}_k{k}_n{n}.json"
    argv = ["--algo", algo, "--env", "metarl/Bandit-v0", "--k", str(k), "--n", str(n),
            "--num-tasks", str(num_tasks), "--json", str(out), "--plot", os.devnull]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluate.main(argv)
    except Exception as exc:  # the Bayes-optimal DP refuses settings it cannot solve
        if "max_states" in str(exc) or "states" in str(exc):
            return None
        raise
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-tasks", type=int, default=10_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    header = "| algo | " + " | ".join(f"k={k}, n={n} (paper)" for k, n in SETTINGS) + " |"
    print(f"Mean total reward per trial, 95% CI over {args.num_tasks} test tasks (split test, seed 0)\n")
    print(header)
    print("|" + "---|" * (len(SETTINGS) + 1))
    for algo in ALGOS:
        cells = []
        for k, n in SETTINGS:
            report = run(algo, k, n, args.num_tasks)
            paper = PAPER[(k, n)].get("gittins" if algo == "bayes_optimal" else algo)
            ref = f" ({paper})" if paper is not None else ""
            if report is None:
                cells.append(f"too many states{ref}")
            else:
                s = report["score"]
                exact = ""
                if algo == "bayes_optimal" and bayes_optimal_num_states(k, n, DEFAULT_MAX_STATES) <= DEFAULT_MAX_STATES:
                    exact = f", exact {bayes_optimal_value(k, n):.3f}"  # the DP's own expected value
                cells.append(f"{s['mean']:.2f} ± {s['ci95']:.2f}{exact}{ref}")
        print(f"| {algo} | " + " | ".join(cells) + " |", flush=True)
    print("\nPaper column for bayes_optimal: Gittins index (the paper's approximation of the Bayes-optimal policy).")


if __name__ == "__main__":
    main()
