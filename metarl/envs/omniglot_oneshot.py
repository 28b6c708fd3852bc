"""The Omniglot one-shot classification benchmark of Lake, Salakhutdinov and Tenenbaum (2015).

Twenty runs of 20-way, within-alphabet, 1-shot classification on the evaluation alphabets.
The distributed layout (``all_runs/`` or ``all_runs.zip`` in the Omniglot repository's
``python/one-shot-classification``) is::

    run01/ … run20/
        training/class01.png … class20.png   one drawing of each of 20 characters
        test/item01.png … item20.png         another drawing of each, by other people
        class_labels.txt                     lines "runNN/test/itemMM.png runNN/training/classKK.png"

A model sees the 20 training drawings (its support set, labels 0 … 19 in file order) and
classifies each test item (the queries); a run's error rate is the fraction of test items
classified wrongly, and the benchmark's is the mean over runs. Any agent with a
``classify(episode) -> query labels`` method (:class:`metarl.fewshot.agent.SupervisedAgent`)
can be scored: ``python -m metarl.evaluate RUN_DIR --benchmark omniglot-oneshot --data-root DIR``.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.core.errors import DatasetError, DatasetNotFoundError
from metarl.core.stats import mean_ci95
from metarl.envs.omniglot import decode_glyph
from metarl.fewshot.episode import Episode

BENCHMARK = "omniglot-oneshot"
LABELS_FILE = "class_labels.txt"
_RUN_RE = re.compile(r"^run\d+$")
LAYOUT = "run01/ … run20/, each with training/classMM.png, test/itemMM.png and class_labels.txt"


@dataclasses.dataclass
class OneShotRun:
    """One run: its name, file names, and the episode (support = training drawings, labels 0 … N-1
    in file order; queries = test items, labelled with their true training class)."""

    name: str
    training: list[str]
    test: list[str]
    episode: Episode


class _Reader:
    """Reads files relative to the folder that holds ``runNN/``: from a folder or a zip."""

    def __init__(self, data_root: str | Path):
        root = Path(data_root).expanduser()
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        self.source = root
        candidates = [root, root / "all_runs", root / "all_runs.zip"]
        for path in candidates:
            if path.is_dir() and any(_RUN_RE.match(p.name) and p.is_dir() for p in path.iterdir()):
                self.base: Path | None = path
                self.source = path
                return
            if path.is_file() and path.suffix == ".zip":
                self._open_zip(path)
                return
        raise DatasetNotFoundError(
            f"no one-shot runs under {root}: expected {LAYOUT}, in that folder, in all_runs/ or in all_runs.zip "
            "(python/one-shot-classification in https://github.com/brendenlake/omniglot)"
        )

    def _open_zip(self, path: Path) -> None:
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path} is not a readable zip file ({exc})") from exc
        self.base, self.source = None, path
        labels = [n for n in self.zip.namelist() if n.endswith(f"/{LABELS_FILE}") and not n.startswith("__MACOSX")]
        if not labels:
            raise DatasetError(f"{path} holds no runNN/{LABELS_FILE}: expected {LAYOUT}")
        run_dir = labels[0].rsplit("/", 1)[0]  # "all_runs/run01" or "run01"
        self.prefix = run_dir.rsplit("/", 1)[0] + "/" if "/" in run_dir else ""

    def runs(self) -> list[str]:
        if self.zip is not None:
            names = {n[len(self.prefix):].split("/", 1)[0] for n in self.zip.namelist() if n.startswith(self.prefix)}
            return sorted(n for n in names if _RUN_RE.match(n))
        assert self.base is not None
        return sorted(p.name for p in self.base.iterdir() if p.is_dir() and _RUN_RE.match(p.name))

    def listdir(self, folder: str) -> list[str]:
        """PNG names (relative to the root) directly inside ``folder``."""
        if self.zip is not None:
            head = self.prefix + folder + "/"
            return sorted(n[len(self.prefix):] for n in self.zip.namelist()
                          if n.startswith(head) and "/" not in n[len(head):] and n.lower().endswith(".png"))
        assert self.base is not None
        path = self.base / folder
        return sorted(f"{folder}/{p.name}" for p in path.glob("*.png")) if path.is_dir() else []

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(self.prefix + name)
            assert self.base is not None
            return (self.base / name).read_bytes()
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"cannot read {name} from {self.source}: {exc}") from exc


def load_runs(data_root: str | Path, image_size: int = 28) -> list[OneShotRun]:
    """Every run under ``data_root`` as an episode of images ``[N, 1, image_size, image_size]``.

    Drawings are preprocessed like the training data of ``metarl/Omniglot-v0`` (inverted to
    ink, Lanczos-resized). Raises :class:`~metarl.core.errors.DatasetNotFoundError` when no
    runs are found and :class:`~metarl.core.errors.DatasetError` naming the file and line when
    a run is malformed.
    """
    reader = _Reader(data_root)
    names = reader.runs()
    if not names:
        raise DatasetNotFoundError(f"{reader.source} holds no run folders: expected {LAYOUT}")
    runs = []
    for run in names:
        training = reader.listdir(f"{run}/training")
        if not training:
            raise DatasetError(f"{reader.source}: {run}/training/ holds no PNG drawings (expected {LAYOUT})")
        lines = reader.read(f"{run}/{LABELS_FILE}").decode("utf-8", errors="replace").splitlines()
        test, labels = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in training:
                raise DatasetError(
                    f"{reader.source}: {run}/{LABELS_FILE} line {number} reads {line!r}; expected "
                    f"'{run}/test/itemMM.png {run}/training/classKK.png' naming one of {len(training)} training drawings"
                )
            test.append(parts[0])
            labels.append(training.index(parts[1]))
        if not test:
            raise DatasetError(f"{reader.source}: {run}/{LABELS_FILE} lists no test items")

        def images(files: list[str]) -> torch.Tensor:
            arr = np.stack([decode_glyph(reader.read(f), image_size, name=f"{reader.source}:{f}") for f in files])
            return torch.from_numpy(arr[:, None].astype(np.float32) / 255.0)

        episode = Episode(images(training), torch.arange(len(training)), images(test), torch.tensor(labels))
        runs.append(OneShotRun(run, training, test, episode))
    return runs


def score_runs(classify: Callable[[Episode], torch.Tensor], runs: list[OneShotRun]) -> dict[str, Any]:
    """Error rate of ``classify`` per run and overall (mean over runs, 95% CI across runs)."""
    per_run = []
    for run in runs:
        predicted = classify(run.episode).cpu()
        wrong = int((predicted != run.episode.query_y).sum())
        items = len(run.test)
        per_run.append({"run": run.name, "errors": wrong, "items": items, "error_rate": wrong / items,
                        "ways": len(run.training)})
    mean, ci = mean_ci95(np.array([r["error_rate"] for r in per_run]))
    return {
        "benchmark": BENCHMARK,
        "num_runs": len(runs),
        "error_rate": {"mean": float(mean), "ci95": float(ci)},
        "runs": per_run,
    }


def summary(report: dict[str, Any]) -> str:
    """Per-run error rates and the overall one as text."""
    rows = [f"  {r['run']}: {r['errors']:2d}/{r['items']} wrong, error {100 * r['error_rate']:.1f}%" for r in report["runs"]]
    e = report["error_rate"]
    head = (f"{report.get('algo', 'model')} on the Omniglot one-shot benchmark ({report['num_runs']} runs): "
            f"error {100 * e['mean']:.2f}% ± {100 * e['ci95']:.2f} (95% CI over runs)")
    return "\n".join([head, *rows])
