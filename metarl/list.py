"""``python -m metarl.list``: the registered task families and algorithms."""

from __future__ import annotations

from metarl.core.registry import family_specs, list_algos


def main() -> int:
    """Print every registered family (with its kind) and algorithm (with its summary)."""
    specs, algos = family_specs(), list_algos()
    width = max(len(name) for name in [*(s.id for s in specs), *(a.name for a in algos)]) + 2
    print("Task families (--env):")
    for spec in specs:
        if spec.available:
            doc = (spec.load().__doc__ or "").strip()
            summary = doc.splitlines()[0] if doc else ""
        else:
            summary = f'(needs pip install "metarl[{spec.extra}]")' if spec.extra else "(dependencies missing)"
        print(f"  {spec.id:<{width}}{spec.kind:<11} {summary}")
    print("\nAlgorithms (--algo):")
    for algo in algos:
        print(f"  {algo.name:<{width}}{algo.kind:<11} {algo.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
