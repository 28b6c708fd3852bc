"""Handwritten digits as a few-shot target domain: scikit-learn's bundled ``load_digits``.

The cross-domain benchmark of metarl: meta-train on Omniglot's characters, adapt to digits
written by other people, scanned differently, at another resolution. The 1,797 8x8 images
(UCI's optical recognition of handwritten digits, 0-16 grey levels) ship inside
scikit-learn, so nothing is downloaded: the loader reads the package's copy of
``datasets/data/digits.csv.gz`` directly (scikit-learn itself is not imported).
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from metarl.core.errors import DatasetError, DatasetNotFoundError
from metarl.core.task import Task
from metarl.fewshot.data import ClassDataset, classification_episodes
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import ClassificationFamily
from metarl.fewshot.image_shifts import IMAGE_SHIFTS

CLASSES = 10
SOURCE = "sklearn/datasets/data/digits.csv.gz"


@dataclasses.dataclass(frozen=True)
class DigitsTask(Task):
    """An N-way task: the digits to tell apart, and the half of the images it draws from."""

    digits: tuple[int, ...]
    split: str = "test"


def digits_file() -> Path:
    """The path of scikit-learn's copy of the digits, or an error saying how to get it."""
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for base in locations:
        path = Path(base) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    raise DatasetNotFoundError(
        f"metarl/Digits-v0 reads the digits bundled with scikit-learn ({SOURCE}), which is not installed here: "
        'pip install "metarl[digits]"'
    )


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """``[n, 8, 8]`` grey levels 0-16 → ``[n, size, size]`` uint8, strokes bright (as Omniglot's)."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    big = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (big.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


_LOCK = threading.Lock()
_CACHE: dict[tuple[str, int], tuple[ClassDataset, ClassDataset]] = {}


def load_digits(size: int) -> tuple[ClassDataset, ClassDataset]:
    """The two halves (``train``, ``test``) of every class, resized to ``size``; cached."""
    path = digits_file()
    key = (str(path), size)
    with _LOCK:
        if key not in _CACHE:
            try:
                with gzip.open(path, "rt") as f:
                    table = np.loadtxt(f, delimiter=",", dtype=np.float64)
            except (OSError, ValueError, EOFError) as exc:
                raise DatasetError(f"{path} is not the readable digits table scikit-learn ships ({exc}); "
                                   "reinstall scikit-learn") from exc
            if table.ndim != 2 or table.shape[1] != 65:
                raise DatasetError(f"{path}: expected rows of 64 pixels and a label, got shape {table.shape}")
            images, labels = _resize(table[:, :64].reshape(-1, 8, 8), size), table[:, 64].astype(np.int64)
            halves: list[list[np.ndarray]] = [[], []]
            for c in range(CLASSES):
                rows = images[labels == c][:, None]  # [count, 1, size, size]; file order is fixed
                half = (len(rows) + 1) // 2
                halves[0].append(rows[:half])
                halves[1].append(rows[half:])
            _CACHE[key] = (ClassDataset.from_classes(halves[0]), ClassDataset.from_classes(halves[1]))
        return _CACHE[key]


@dataclasses.dataclass(frozen=True)
class DigitsFamily(ClassificationFamily[DigitsTask]):
    """N-way K-shot classification of handwritten digits (scikit-learn's ``load_digits``).

    ## Description
    A task is ``ways`` of the ten digits; an episode draws ``shots`` support and ``queries``
    query images of each, distinct, relabelled ``0 … ways-1`` in a random order. The 8x8
    images are resized (bilinear) to ``image_size`` so that a model trained on Omniglot at
    28x28 reads them unchanged.

    ## Arguments
    ``ways`` (10), ``shots`` (1), ``queries`` (15), ``image_size`` (28).

    ## Task distribution
    ``ways`` distinct digits, uniformly, in a random order.

    ## Splits
    Each digit's ~180 images are halved in the file's order: ``train`` tasks draw from the
    first half, ``test`` and ``ood`` from the second, so a model meta-trained on digits is
    never tested on an image it saw. As a target domain (``metarl.evaluate RUN --target
    metarl/Digits-v0``) the ``test`` split is used.

    ## Data
    Read from scikit-learn's package (``datasets/data/digits.csv.gz``) without importing it;
    without scikit-learn, making an episode says ``pip install "metarl[digits]"``.
    """

    ways: int = dataclasses.field(default=10, metadata={"help": "digits per task (N-way), at most 10"})
    shots: int = dataclasses.field(default=1, metadata={"help": "support images per digit (K-shot)"})
    queries: int = dataclasses.field(default=15, metadata={"help": "query images per digit"})
    image_size: int = dataclasses.field(default=28, metadata={"help": "images are resized to this square size"})

    task_type = DigitsTask
    shifts: ClassVar[dict[str, str]] = IMAGE_SHIFTS
    valueless_shifts: ClassVar[frozenset[str]] = frozenset({"invert"})
    input_shifts: ClassVar[frozenset[str]] = frozenset(IMAGE_SHIFTS)
    ood_shift: ClassVar[str] = "none of its own (the test half); the domain shift is from another family's training"

    def __post_init__(self) -> None:
        if not 1 <= self.ways <= CLASSES:
            raise ValueError(f"ways must lie in [1, {CLASSES}], got {self.ways}")
        for name in ("shots", "queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {self.image_size}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.image_size, self.image_size)

    def _data(self, split: str) -> ClassDataset:
        return load_digits(self.image_size)[0 if split == "train" else 1]

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[DigitsTask]:
        label = "train" if split == "train" else "test"
        return [DigitsTask(tuple(int(d) for d in rng.permutation(CLASSES)[: self.ways]), label) for _ in range(n)]

    def check_task(self, task: DigitsTask) -> None:
        if len(task.digits) != self.ways or len(set(task.digits)) != self.ways:
            raise ValueError(f"a task of this family names {self.ways} distinct digits, got {task.digits}")
        if not all(0 <= d < CLASSES for d in task.digits):
            raise ValueError(f"digits must lie in [0, {CLASSES}), got {task.digits}")
        if task.split not in ("train", "test"):
            raise ValueError(f"a task's split is 'train' or 'test' (the half of the images), got {task.split!r}")

    def _sample_episodes(self, tasks: Sequence[DigitsTask], shots: int, queries: int,
                         rng: np.random.Generator) -> Episode:
        checked = [self.validate_task(t) for t in tasks]
        splits = {t.split for t in checked}
        if len(splits) > 1:
            raise ValueError("an episode batch draws from one half of the digits: don't mix train and test tasks")
        data = self._data(splits.pop() if splits else "test")
        classes = np.array([t.digits for t in checked], dtype=np.int64).reshape(len(checked), self.ways)
        return classification_episodes(data, classes, shots, queries, rng)

    def examples_available(self, tasks: Sequence[DigitsTask]) -> int:
        """The fewest images any digit has in the tasks' half (about 90)."""
        splits = {t.split for t in tasks} or {"test"}
        return int(min(self._data(s).counts.min() for s in splits))

    def class_dataset(self, split: str = "train") -> tuple[ClassDataset, np.ndarray, np.ndarray]:
        data = self._data(split)
        return data, np.arange(CLASSES), np.zeros(CLASSES, dtype=np.int64)
