"""Helpers shared by the tests: synthetic Omniglot data in the distributed layouts, and
small assertions about runs and command lines. Fixtures built on them are in ``conftest.py``."""

from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from metarl.envs import omniglot_oneshot as oneshot
from metarl.envs.omniglot import SET_DIRS


def glyph_template(rng: np.random.Generator, canvas: int = 105) -> np.ndarray:
    """A synthetic character: three strokes of three points each, ``[3, 3, 2]`` pixel coordinates."""
    return rng.uniform(0.2, 0.8, size=(3, 3, 2)) * canvas


def draw_glyph(template: np.ndarray, rng: np.random.Generator, canvas: int = 105) -> bytes:
    """One drawing of a synthetic character as PNG bytes (black strokes on white, mode "1" like Omniglot):
    the points jittered and the whole glyph shifted by a few pixels."""
    from PIL import Image, ImageDraw

    pts = template + rng.normal(0, canvas * 0.02, template.shape) + rng.normal(0, canvas * 0.04, 2)
    im = Image.new("L", (canvas, canvas), 255)
    draw = ImageDraw.Draw(im)
    for stroke in pts:
        draw.line([tuple(p) for p in stroke], fill=0, width=max(1, canvas // 25))
    buf = io.BytesIO()
    im.convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_synthetic(
    root: str | Path,
    sets: dict[str, Sequence[str]],
    characters: int = 6,
    drawings: int = 8,
    canvas: int = 105,
    as_zip: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny synthetic Omniglot in the distributed layout (for tests and smoke runs).

    Each character is three random strokes; each drawing of it jitters the stroke points and
    shifts the whole glyph by a few pixels, so classes are learnable but drawings differ.

    Args:
        root: the data root to create (``images_<set>/`` folders, or ``images_<set>.zip``).
        sets: set name (``small1``, ``evaluation``, …) to its alphabet names; an alphabet in two
            sets gets the same glyphs in both, as Greek and Latin do in the minimal sets.
        characters: characters per alphabet.
        drawings: drawings per character.
        canvas: image side in pixels (105 in Omniglot).
        as_zip: write zips instead of folders.
        seed: the glyphs' seed.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for set_name, alphabets in sets.items():
        stem = SET_DIRS[set_name]
        files: dict[str, bytes] = {}
        for alphabet in alphabets:
            arng = np.random.default_rng([seed, *alphabet.encode()])
            for c in range(1, characters + 1):
                template = glyph_template(arng, canvas)
                for d in range(1, drawings + 1):
                    files[f"{stem}/{alphabet}/character{c:02d}/{c:02d}{d:02d}_{d:02d}.png"] = draw_glyph(
                        template, arng, canvas)
        if as_zip:
            with zipfile.ZipFile(root / f"{stem}.zip", "w") as z:
                for name, data in files.items():
                    z.writestr(name, data)
        else:
            for name, data in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    return root


def write_synthetic_runs(root: str | Path, runs: int = 2, ways: int = 5, canvas: int = 105, seed: int = 0) -> Path:
    """Write synthetic one-shot runs in the distributed layout (a test fixture): ``runs`` runs of
    ``ways`` synthetic characters, one training and one test drawing each, test items listed in a
    shuffled order in ``class_labels.txt``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for r in range(1, runs + 1):
        run = f"run{r:02d}"
        (root / run / "training").mkdir(parents=True, exist_ok=True)
        (root / run / "test").mkdir(parents=True, exist_ok=True)
        templates = [glyph_template(rng, canvas) for _ in range(ways)]
        order = rng.permutation(ways)  # test item m shows training class order[m]
        lines = []
        for k, template in enumerate(templates, 1):
            (root / run / "training" / f"class{k:02d}.png").write_bytes(draw_glyph(template, rng, canvas))
        for m, k in enumerate(order, 1):
            (root / run / "test" / f"item{m:02d}.png").write_bytes(draw_glyph(templates[k], rng, canvas))
            lines.append(f"{run}/test/item{m:02d}.png {run}/training/class{k + 1:02d}.png")
        (root / run / oneshot.LABELS_FILE).write_text("\n".join(lines) + "\n")
    return root


TINY_RL2 = ["--algo", "rl2", "--env", "metarl/Bandit-v0", "--k", "2", "--n", "5", "--num-trials", "8",
            "--total-env-steps", "160", "--eval-tasks", "10", "--eval-every", "2", "--no-progress"]
"""An RL² training run of a second: 20 iterations of 8 two-armed bandit trials of 5 pulls."""

def only_run(logdir: Path) -> Path:
    """The single run directory under ``logdir``."""
    runs = list(logdir.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def run_command(main: Callable[[list[str]], int], argv: list[str], capfd: Any) -> tuple[int, str]:
    """Run a CLI entry point as ``python -m`` does (through ``run_cli``'s error handling);
    return its exit status and what it printed to stderr, whitespace and box rules folded."""
    from metarl.run.config import run_cli

    old = sys.argv
    sys.argv = ["metarl", *argv]
    try:
        run_cli(lambda: main(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    err = capfd.readouterr().err
    return code, " ".join(err.replace("│", " ").split())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (to show nothing changed)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def exits_2(capsys: Any, main: Callable[[list[str]], int], argv: list[str], message: str) -> None:
    """``main(argv)`` (run through ``run_cli``'s error handling) exits with status 2 and prints
    ``message`` (compared with whitespace folded)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()), err


def load_experiment(name: str) -> ModuleType:
    """The script ``experiments/<name>.py`` as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
