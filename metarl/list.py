"""``python -m metarl.list``: the registered task families and algorithms."""

from __future__ import annotations

from metarl.registry import family_spec, list_algos, list_families


def main() -> int:
    """Print every registered family (with its kind) and algorithm (with its summary)."""
    print("Task families (--env):")
    for fid in list_families():
        cls = family_spec(fid).load()
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"  {fid:<28} {getattr(cls, 'kind', '?'):<11} {doc}")
    print("\nAlgorithms (--algo):")
    for spec in list_algos():
        print(f"  {spec.name:<28} {spec.kind:<11} {spec.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
