"""``python -m metarl.check``: run the conformance suite on a task family.

    python -m metarl.check metarl/Nav2D-v0
    python -m metarl.check my_families:mine/LineGoal-v0          # your own module
    python -m metarl.check metarl/Bandit-v0 --k 3                # the family's own flags
    python -m metarl.check mine/LineGoal-v0 --import my_families --only "train and test tasks differ"
    python -m metarl.check metarl/Pendulum-v0 --device cuda       # where the device-env checks run (cpu)

Prints one line per check (pass, FAIL, skip, with what it found) and exits with status 0 when
no check failed, 1 otherwise (2 for bad input). The checks are those of
``metarl.conformance`` — the ones metarl's own test suite runs on every registered family.
"""

from __future__ import annotations

import sys

import torch

from metarl.conformance import CHECKS, check_family
from metarl.core.errors import UsageError
from metarl.core.registry import family_spec
from metarl.run.config import family_default, import_modules, parse_sections, run_cli, split_env

PROG = "python -m metarl.check"


def main(argv: list[str] | None = None) -> int:
    """Check the family named by the first argument; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nThe checks:\n" + "\n".join(f"  {name} ({kind})" for name, (kind, _) in CHECKS.items()))
        return 0 if argv else 2
    env, rest = argv[0], argv[1:]
    values: dict[str, list[str]] = {"--only": [], "--import": [], "--device": []}
    while any(flag in rest for flag in values):
        flag = next(flag for flag in values if flag in rest)
        i = rest.index(flag)
        if i + 1 >= len(rest):
            raise UsageError(f"{flag} needs a value")
        values[flag].append(rest[i + 1])
        del rest[i : i + 2]
    only, imports, devices = values["--only"], values["--import"], values["--device"]
    device = devices[-1] if devices else "cpu"
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"--device {device}: not a torch device ({exc})") from exc
    module, family_id = split_env(env)
    import_modules([*imports, *([module] if module else [])])
    spec = family_spec(family_id)
    family = parse_sections(PROG, f"Check the family {spec.id}; its flags:", {"env": family_default(family_id)},
                            rest)["env"]
    try:
        report = check_family(family, only=only or None, device=device)
    except ValueError as exc:  # an unknown check name
        raise UsageError(str(exc)) from exc
    report.family = spec.id
    print(report)
    return 0 if report.ok else 1


def cli() -> None:
    """The console script ``metarl-check``: :func:`main` with the CLI's error handling."""
    run_cli(main)


if __name__ == "__main__":
    cli()
