"""Domain adaptation, measured: meta-learners beside pretrained, scratch and test-time-adaptation
baselines on shifted task distributions. Writes ``experiments/DOMAIN_ADAPTATION.md``.

Each row trains its runs with ``python -m metarl.train ... --time-limit S`` and scores them with
``python -m metarl.evaluate RUN ... --beside OTHER_RUNS`` (the adaptation protocol: the same
tasks, seed and data for every method; see ``metarl/adaptation.py``):

- ``digits``: ProtoNets, fine-tuning and MAML meta-trained on Omniglot (5-way 1-shot protocol),
  adapted to handwritten digits (``metarl/Digits-v0``, 5-way), beside training from scratch,
  support-set batch-norm statistics and pixel nearest neighbour;
- ``rotated``: the same runs on held-out Omniglot alphabets rotated by 15, 30 and 45 degrees;
- ``sinusoid``: MAML and Meta-SGD on amplitudes beyond the training range (``amplitude:5..10``);
- ``pendulum``, ``nav2d``: RL², MAML-PG and a multi-task pretrained policy (MAML-PG with
  ``--inner-steps 0``) on the ``ood`` split (pendulum physics, Nav2D goals outside the square).

    python experiments/domain_adaptation.py                 # every row (about 60 minutes alone)
    python experiments/domain_adaptation.py --only sinusoid
    python experiments/domain_adaptation.py --quick         # seconds-long budgets: checks the pipeline

Run it alone (two jobs on two cores slow each other); ``--lock FILE`` waits for an flock on FILE
around every command so that it can share a machine with other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "domain_adaptation"
REPORT = ROOT / "experiments" / "DOMAIN_ADAPTATION.md"
PY = "python -m"

# name -> (train commands by run name, evaluations: (label, run name, flags))
ROWS: dict[str, dict[str, object]] = {
    "digits": {
        "train": {
            "protonet": ("metarl.train --algo protonet --env metarl/Omniglot-v0 --iterations 100000", 240),
            "finetune": ("metarl.train --algo finetune --env metarl/Omniglot-v0 --iterations 100000", 240),
            "maml": ("metarl.train --algo maml --env metarl/Omniglot-v0 --inner-lr 0.4 --meta-batch 16 "
                     "--iterations 100000", 360),
        },
        "eval": [
            ("Omniglot → digits, 5-way", "protonet",
             "--target metarl/Digits-v0 --ways 5 --beside {finetune} {maml} --scratch-tasks 50"),
            ("Omniglot held-out alphabets, 5-way (no shift)", "protonet",
             "--split test --beside {finetune} {maml} --scratch-tasks 50"),
        ],
    },
    "rotated": {
        "needs": "digits",
        "eval": [
            (f"Omniglot held-out alphabets rotated {a}°, 5-way", "protonet",
             f"--split test --shift rotate:{a} --beside {{finetune}} {{maml}} --no-baselines") for a in (15, 30, 45)
        ],
    },
    "sinusoid": {
        "train": {
            "maml": ("metarl.train --algo maml --env metarl/Sinusoid-v0 --iterations 100000", 240),
            "metasgd": ("metarl.train --algo maml --meta-sgd --env metarl/Sinusoid-v0 --iterations 100000", 240),
        },
        "eval": [
            ("sinusoid, training amplitudes (0.1..5)", "maml", "--split test --shift amplitude:0.1..5 --beside {metasgd} "
             "--scratch-lr 0.01"),
            ("sinusoid, amplitudes 5..10 (beyond training)", "maml", "--split test --shift amplitude:5..10 "
             "--beside {metasgd} --scratch-lr 0.01"),
        ],
    },
    "pendulum": {
        "train": {
            "rl2": ("metarl.train --algo rl2 --env metarl/Pendulum-v0 --total-env-steps 100000000", 120),
            "maml_pg": ("metarl.train --algo maml_pg --env metarl/Pendulum-v0 --iterations 100000", 120),
            "pretrained": ("metarl.train --algo maml_pg --inner-steps 0 --env metarl/Pendulum-v0 --iterations 100000",
                           120),
        },
        "eval": [
            ("Pendulum, test tasks", "rl2", "--split test --num-tasks 100 --beside {maml_pg} {pretrained}"),
            ("Pendulum, ood physics", "rl2", "--split ood --num-tasks 100 --beside {maml_pg} {pretrained}"),
        ],
    },
    "nav2d": {
        "train": {
            "rl2": ("metarl.train --algo rl2 --env metarl/Nav2D-v0 --total-env-steps 100000000", 120),
            "maml_pg": ("metarl.train --algo maml_pg --env metarl/Nav2D-v0 --iterations 100000", 120),
            "pretrained": ("metarl.train --algo maml_pg --inner-steps 0 --env metarl/Nav2D-v0 --iterations 100000", 120),
        },
        "eval": [
            ("Nav2D, test goals", "rl2", "--split test --num-tasks 100 --beside {maml_pg} {pretrained}"),
            ("Nav2D, goals outside the training square (ood)", "rl2",
             "--split ood --num-tasks 100 --beside {maml_pg} {pretrained}"),
        ],
    },
}


def run(cmd: str, lock: str | None) -> float:
    """Run ``cmd`` (under an flock when ``lock``), echoing it; its wall time in seconds."""
    argv = [sys.executable, "-m", *shlex.split(cmd)[2:]] if cmd.startswith(PY) else shlex.split(cmd)
    if lock:
        argv = ["flock", lock, *argv]
    print("$", cmd, flush=True)
    began = time.monotonic()
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def run_dir(logdir: Path) -> Path:
    """The one run directory metarl.train created under ``logdir``."""
    (only,) = [p for p in logdir.iterdir() if (p / "config.json").is_file()]
    return only


def do_row(name: str, quick: bool, lock: str | None, done: dict[str, dict[str, Path]],
           trained: dict[str, object] | None = None) -> dict[str, object]:
    """Train a row's runs (or reuse another row's, or with ``trained`` the record of an earlier
    training of this row) and evaluate; the row's record."""
    row = ROWS[name]
    need = str(row.get("needs", ""))
    runs: dict[str, Path] = dict(done.get(need, {}))
    if need and not runs:  # the runs another row trained before
        runs = {p.name: run_dir(p) for p in sorted((OUT / need).iterdir()) if p.is_dir()}
    record: dict[str, object] = {"name": name, "train": [], "eval": []}
    if trained is not None:
        record["train"] = trained.get("train") or [
            {"run": run_name, "command": f"python -m {cmd} --time-limit {seconds}", "seconds": None, "load": None}
            for run_name, (cmd, seconds) in dict(row.get("train", {})).items()]  # type: ignore[call-overload]
        for run_name in dict(row.get("train", {})):  # type: ignore[call-overload]
            runs[run_name] = run_dir(OUT / name / run_name)
    for run_name, (cmd, seconds) in dict(row.get("train", {}) if trained is None else {}).items():  # type: ignore[call-overload]
        logdir = OUT / name / run_name
        if logdir.exists():
            subprocess.run(["rm", "-rf", str(logdir)], check=True)
        budget = 8 if quick else seconds
        full = f"{PY} {cmd} --time-limit {budget} --eval-every 0 --no-compare --no-progress --logdir {logdir}"
        wall = run(full, lock)
        runs[run_name] = run_dir(logdir)
        record["train"].append({"run": run_name, "command": f"python -m {cmd} --time-limit {budget}",  # type: ignore[union-attr]
                                "seconds": round(wall, 1), "load": os.getloadavg()[0]})
    done[name] = runs
    for i, (label, primary, flags) in enumerate(row["eval"]):  # type: ignore[arg-type]
        paths = {k: str(v) for k, v in runs.items()}
        flags = flags.format(**paths)
        if quick:
            flags += " --num-tasks 20 --scratch-tasks 4"
        out = OUT / name / f"eval{i}.json"
        cmd = f"{PY} metarl.evaluate {runs[primary]} {flags} --json {out}"
        wall = run(cmd, lock)
        shown = cmd
        for k, v in paths.items():
            shown = shown.replace(v, f"RUN_{k.upper()}")
        shown = shown.replace(str(ROOT) + "/", "")
        record["eval"].append({"label": label, "command": "python -m" + shown[len(PY):], "json": str(out),  # type: ignore[union-attr]
                               "png": str(out.with_suffix(".png")), "seconds": round(wall, 1),
                               "load": os.getloadavg()[0]})
    return record


def method_table(report: dict[str, object]) -> list[str]:
    """A Markdown table of one evaluation: a row per method, a column per point of the curve."""
    methods = report["methods"]  # type: ignore[index]
    xs = sorted({p["x"] for m in methods for p in m["curve"]})  # type: ignore[union-attr,index]
    x_name = methods[0]["x_name"].replace("_", " ")  # type: ignore[index]
    lines = ["| method | role | tasks | " + " | ".join(f"{x_name} {x}" for x in xs) + " |",
             "|---|---|---:|" + "---:|" * len(xs)]
    for m in methods:  # type: ignore[union-attr]
        by_x = {p["x"]: p for p in m["curve"]}
        cells = [f"{by_x[x]['mean']:.3f} ± {by_x[x]['ci95']:.3f}" if x in by_x else "" for x in xs]
        lines.append(f"| {m['name']} | {m['role']} | {m['num_tasks']} | " + " | ".join(cells) + " |")
    lines.append(f"\n({methods[0]['curve_name'].replace('_', ' ')}, mean ± 95% CI over tasks)")  # type: ignore[index]
    lines += ["", verdict(report)]
    return lines


def verdict(report: dict[str, object]) -> str:
    """Where the best meta-learned method stands against the best other method, point by point
    (higher is better except for an MSE): the difference and whether the 95% intervals overlap."""
    methods = report["methods"]  # type: ignore[index]
    lower = "mse" in methods[0]["curve_name"]  # type: ignore[index]
    meta = [m for m in methods if m["role"] == "meta-learned"]  # type: ignore[union-attr]
    other = [m for m in methods if m["role"] != "meta-learned"]  # type: ignore[union-attr]
    if not meta or not other:
        return ""
    points = {m["name"]: {p["x"]: p for p in m["curve"]} for m in methods}  # type: ignore[union-attr,index]
    pick = min if lower else max
    parts = []
    xs = sorted({x for m in meta for x in points[m["name"]]})  # type: ignore[index]
    for x in xs:
        if not any(x in points[m["name"]] for m in other):  # type: ignore[index]
            continue
        bm = pick((m["name"] for m in meta if x in points[m["name"]]), key=lambda n: points[n][x]["mean"])
        om = pick((m["name"] for m in other if x in points[m["name"]]), key=lambda n: points[n][x]["mean"])
        bp, op = points[bm][x], points[om][x]
        diff = bp["mean"] - op["mean"]
        better = diff < 0 if lower else diff > 0
        apart = abs(diff) > bp["ci95"] + op["ci95"]
        word = ("ahead" if better else "behind") if apart else "level (intervals overlap)"
        parts.append(f"{x}: {bm} {bp['mean']:.3f} vs {om} {op['mean']:.3f} ({diff:+.3f}, {word})")
    return "Best meta-learned vs best other method — " + "; ".join(parts) + "."


def load_text(load: float | str) -> str:
    """A load average as recorded: a reading, or a range written by hand from several readings."""
    return f"{load:.1f}" if isinstance(load, (int, float)) else load


def write_report(records: list[dict[str, object]], quick: bool) -> None:
    """``DOMAIN_ADAPTATION.md``: every evaluation's table and figure with its commands."""
    lines = ["# Domain adaptation", "",
             "Written by `python experiments/domain_adaptation.py`" + (" --quick (pipeline check only)" if quick else "")
             + f" on {time.strftime('%Y-%m-%d')}; 2-core CPU, one torch thread. Every method of a table is scored on "
             "the same tasks with the same seed and data (the protocol of `python -m metarl.evaluate RUN --split ood "
             "| --shift | --target | --beside`, `metarl/adaptation.py`). `scratch` trains the same kind of network "
             "from random weights on each task's data only (fewer tasks: it trains one network per task and shot "
             "count); `+ support BN` re-estimates batch-norm statistics on each episode's support set.", ""]
    summary = OUT / "summary.md"  # the conclusions, written by hand from the tables below
    if summary.is_file():
        lines += [summary.read_text().strip(), ""]
    for rec in records:
        lines += [f"## {rec['name']}", ""]
        for t in rec["train"]:  # type: ignore[union-attr]
            took = f"{t['seconds']:.0f} s wall, load {load_text(t['load'])}" if t["seconds"] is not None else "time-limited"
            lines.append(f"- train `{t['command']}` ({took})")
        lines.append("")
        for e in rec["eval"]:  # type: ignore[union-attr]
            json_path = OUT / str(rec["name"]) / Path(e["json"]).name  # records may come from another checkout
            report = json.loads(json_path.read_text())
            png = json_path.with_suffix(".png").relative_to(REPORT.parent)
            lines += [f"### {e['label']}", "", f"`{e['command']}` ({e['seconds']:.0f} s, load {load_text(e['load'])})", "",
                      *method_table(report), "", f"![{e['label']}]({png})", ""]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=list(ROWS), help="rows to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="seconds-long budgets and 20 tasks: a pipeline check")
    parser.add_argument("--lock", help="flock this file around every command")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the saved records")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the runs trained before (saved records)")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads((OUT / "records.json").read_text()), args.quick)
        return
    names = args.only or list(ROWS)
    for name in list(names):
        need = ROWS[name].get("needs")
        if need and need not in names and not (OUT / str(need)).is_dir():
            names.insert(names.index(name), str(need))
    done: dict[str, dict[str, Path]] = {}
    saved = OUT / "records.json"
    kept = {r["name"]: r for r in json.loads(saved.read_text())} if saved.is_file() else {}
    for name in names:
        record = do_row(name, args.quick, args.lock, done, kept.get(name, {}) if args.eval_only else None)
        kept[name] = record  # rows run before and not now stay in the report
        saved.write_text(json.dumps([kept[n] for n in ROWS if n in kept], indent=2) + "\n")
    write_report([kept[n] for n in ROWS if n in kept], args.quick)


if __name__ == "__main__":
    main()
