"""Omniglot few-shot character classification (Lake, Salakhutdinov and Tenenbaum, Science 2015)."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from metarl.core.errors import DatasetError, DatasetNotFoundError
from metarl.core.task import Task
from metarl.fewshot.data import ClassDataset, classification_episodes, rotation_classes
from metarl.fewshot.episode import Episode
from metarl.fewshot.family import ClassificationFamily
from metarl.fewshot.image_shifts import IMAGE_SHIFTS

SET_DIRS: dict[str, str] = {
    "background": "images_background",
    "evaluation": "images_evaluation",
    "small1": "images_background_small1",
    "small2": "images_background_small2",
}
"""Set names (as given to ``background`` and ``heldout``) and their folder / zip names."""

AUTO_HELDOUT: dict[str, str] = {"small1": "small2", "small2": "small1"}
"""``heldout="auto"``: each minimal set is tested on the other's alphabets; every other
background is tested on the evaluation set."""

DOWNLOAD = "https://github.com/brendenlake/omniglot (python/images_*.zip)"


def default_data_root() -> str:
    """``$METARL_OMNIGLOT``, else ``../shared/data/omniglot`` beside the repository if present, else ``""``."""
    env = os.environ.get("METARL_OMNIGLOT")
    if env:
        return env
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "omniglot"
    return str(shared) if shared.is_dir() else ""


# ---------------------------------------------------------------------------------------------
# Reading the standard layout <set>/<alphabet>/<character>/*.png from a folder or a zip
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SetIndex:
    """The names in one Omniglot set: its classes (alphabet, character) and their image files."""

    name: str
    source: Path  # the folder or zip file read
    classes: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, ...], ...]  # per class: zip member names or file paths

    @property
    def alphabets(self) -> list[str]:
        return list(dict.fromkeys(a for a, _ in self.classes))


_LOCK = threading.Lock()
_INDEX_CACHE: dict[tuple[str, int], SetIndex] = {}
_IMAGE_CACHE: dict[tuple[str, int, int, int], ClassDataset] = {}


def _locate(root: str, set_name: str) -> Path:
    """The folder or zip of ``set_name`` under ``root``, or an error naming both."""
    if set_name not in SET_DIRS:
        raise ValueError(f"unknown Omniglot set {set_name!r}; expected one of {', '.join(SET_DIRS)}")
    stem = SET_DIRS[set_name]
    if not root:
        raise DatasetNotFoundError(
            f"no Omniglot data root: pass --data-root DIR (or set METARL_OMNIGLOT) to a folder holding "
            f"{stem}/ or {stem}.zip (download: {DOWNLOAD})"
        )
    base = Path(root).expanduser()
    folder, archive = base / stem, base / f"{stem}.zip"
    if folder.is_dir():
        return folder
    if archive.is_file():
        return archive
    raise DatasetNotFoundError(
        f"Omniglot set {set_name!r} not found: expected the folder {folder}/ "
        f"(<alphabet>/<character>/*.png) or the zip {archive} (download: {DOWNLOAD})"
    )


def _group(entries: list[tuple[str, str, str]], source: Path, set_name: str) -> SetIndex:
    if not entries:
        raise DatasetError(
            f"{source} holds no images in the layout <alphabet>/<character>/*.png expected of Omniglot set {set_name!r}"
        )
    by_class: dict[tuple[str, str], list[str]] = {}
    for alphabet, character, name in sorted(entries):
        by_class.setdefault((alphabet, character), []).append(name)
    keys = tuple(by_class)
    return SetIndex(set_name, source, keys, tuple(tuple(by_class[k]) for k in keys))


def _index_folder(folder: Path, set_name: str) -> SetIndex:
    inner = [p for p in folder.iterdir() if p.is_dir()]
    if len(inner) == 1 and inner[0].name == folder.name:  # unzipped as images_x/images_x/
        folder = inner[0]
    entries = [(p.parent.parent.name, p.parent.name, str(p)) for p in folder.glob("*/*/*.png")]
    return _group(entries, folder, set_name)


def _index_zip(archive: Path, set_name: str) -> SetIndex:
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{archive} is not a readable zip file ({exc}); download it again from {DOWNLOAD}") from exc
    entries = []
    for name in names:
        parts = name.split("/")
        if name.lower().endswith(".png") and len(parts) >= 3 and "__MACOSX" not in parts:
            entries.append((parts[-3], parts[-2], name))
    return _group(entries, archive, set_name)


def set_index(root: str, set_name: str) -> SetIndex:
    """The (cached) index of one set: names only, no image is decoded."""
    source = _locate(root, set_name)
    key = (str(source.resolve()), source.stat().st_mtime_ns)
    with _LOCK:
        if key not in _INDEX_CACHE:
            _INDEX_CACHE[key] = _index_zip(source, set_name) if source.is_file() else _index_folder(source, set_name)
        return _INDEX_CACHE[key]


def decode_glyph(data: bytes | str | Path, image_size: int, angle: int = 0, name: str = "") -> np.ndarray:
    """One Omniglot drawing as ``uint8`` ink (strokes high, background 0), ``image_size`` square.

    The PNG is black strokes on white; it is rotated by ``angle`` degrees counter-clockwise
    (before resizing, for quality), resized with a Lanczos filter, and inverted.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            gray = im.convert("L")
            if angle % 360:
                gray = gray.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
            small = gray.resize((image_size, image_size), Image.Resampling.LANCZOS)
            return 255 - np.asarray(small, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise DatasetError(f"cannot decode {name or data!s}: {exc} (a corrupt or non-PNG file)") from exc


def set_images(index: SetIndex, image_size: int, angle: int = 0) -> ClassDataset:
    """All drawings of a set, decoded once and cached: ``[classes, drawings, 1, size, size]`` uint8."""
    key = (str(index.source.resolve()), index.source.stat().st_mtime_ns, image_size, angle % 360)
    with _LOCK:
        if key in _IMAGE_CACHE:
            return _IMAGE_CACHE[key]
    classes: list[np.ndarray] = []
    if index.source.is_file():
        try:
            with zipfile.ZipFile(index.source) as z:
                for files in index.files:
                    classes.append(np.stack([decode_glyph(z.read(f), image_size, angle, f"{index.source}:{f}")
                                             for f in files])[:, None])
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise DatasetError(f"{index.source} is corrupt ({exc}); download it again from {DOWNLOAD}") from exc
    else:
        for files in index.files:
            classes.append(np.stack([decode_glyph(f, image_size, angle) for f in files])[:, None])
    data = ClassDataset.from_classes(classes)
    with _LOCK:
        _IMAGE_CACHE[key] = data
    return data


@dataclasses.dataclass(frozen=True, eq=False)
class ClassPool:
    """The classes of one split: one or more sets, alphabets deduplicated (first set wins)."""

    indexes: tuple[SetIndex, ...]
    keys: tuple[tuple[str, str], ...]  # (alphabet, character) of each pool row
    origin: tuple[tuple[int, int], ...]  # (set position, class index in that set) of each row
    row: dict[tuple[str, str], int]
    alphabet_rows: dict[str, np.ndarray]
    counts: np.ndarray

    @staticmethod
    def build(indexes: Sequence[SetIndex], exclude: set[str]) -> ClassPool:
        keys, origin, seen = [], [], set(exclude)
        for s, index in enumerate(indexes):
            fresh = {a for a in index.alphabets if a not in seen}
            for c, key in enumerate(index.classes):
                if key[0] in fresh:
                    keys.append(key)
                    origin.append((s, c))
            seen |= fresh
        alphabet_rows: dict[str, list[int]] = {}
        for i, (a, _) in enumerate(keys):
            alphabet_rows.setdefault(a, []).append(i)
        counts = np.array([len(indexes[s].files[c]) for s, c in origin], dtype=np.int64)
        return ClassPool(tuple(indexes), tuple(keys), tuple(origin), {k: i for i, k in enumerate(keys)},
                         {a: np.array(r) for a, r in alphabet_rows.items()}, counts)

    def images(self, image_size: int, angle: int) -> ClassDataset:
        """The pool's drawings (decoded sets are cached; the selection is cached per pool)."""
        key = (image_size, angle)
        cache: dict[tuple[int, int], ClassDataset] = self.__dict__.setdefault("_images", {})
        if key not in cache:
            data: ClassDataset | None = None
            for s, index in enumerate(self.indexes):
                rows = np.array([c for t, c in self.origin if t == s], dtype=np.int64)
                if len(rows):
                    part = set_images(index, image_size, angle).subset(rows)
                    data = part if data is None else data.concat(part)
            assert data is not None
            cache[key] = data
        return cache[key]


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OmniglotTask(Task):
    """One N-way task: class ``i`` is character ``characters[i]`` of alphabet ``alphabets[i]``,
    every drawing rotated ``angles[i]`` degrees counter-clockwise (0 for an unrotated class)."""

    alphabets: tuple[str, ...]
    characters: tuple[str, ...]
    angles: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class OmniglotFamily(ClassificationFamily[OmniglotTask]):
    """N-way K-shot classification of handwritten characters from 50 alphabets (Omniglot).

    ## Description
    A task is ``ways`` characters; an episode gives ``shots`` drawings of each to adapt on
    and ``queries`` other drawings of each to classify. Every character was drawn once by
    each of 20 people.

    ## Inputs and labels
    ``x``: ``float32 [1, image_size, image_size]`` in ``[0, 1]``, ink high (strokes 1,
    background 0), resized from 105×105 with a Lanczos filter. ``y``: ``0 … ways-1``,
    relabelled in a random order in each episode.

    ## Arguments
    ``ways`` (5), ``shots`` (1) and ``queries`` (15, per class) of the test protocol;
    ``image_size`` (28); ``rotations`` (True: training classes are augmented with their 90°,
    180° and 270° rotations, each a new class); ``data_root``; ``background`` (the training
    set: ``small1``, ``small2``, ``small1+small2`` (Greek and Latin, in both, counted once),
    ``background``, or any ``+``-joined sets); ``heldout`` (the set whose alphabets are tested);
    ``train_scope`` and ``test_scope`` (``within``: a task's characters come from one alphabet,
    as in Lake et al.'s one-shot runs; ``across``: from any alphabet of the split).

    ## Task distribution
    ``across``: ``ways`` distinct classes uniformly from the split's classes. ``within``: an
    alphabet uniformly among those with at least ``ways`` classes, then ``ways`` distinct
    classes of it uniformly. Training classes include rotations when ``rotations`` is set.

    ## Splits
    Splits are by alphabet, so a test character is never seen in training.

    - ``train``: every alphabet of ``background``.
    - ``test``: the alphabets of ``heldout`` that are not in ``background``. With
      ``heldout="auto"``: ``small1`` (Balinese, Early_Aramaic, Greek, Korean, Latin) is tested
      on ``small2``'s Japanese_(katakana), Sanskrit and Tagalog; ``small2`` (Greek,
      Japanese_(katakana), Latin, Sanskrit, Tagalog) on ``small1``'s Balinese, Early_Aramaic
      and Korean; any other background (``background``, ``small1+small2``) on the 20
      alphabets of ``evaluation``. 20-way ``within`` tasks skip alphabets with fewer than 20
      characters (Tagalog has 17).
    - ``ood``: the test alphabets with every drawing rotated by 45° plus a random quarter turn
      (a rotation never seen in training, where rotations are multiples of 90°).

    ## Data
    ``data_root`` holds each set as a folder ``images_<set>/<alphabet>/<character>/*.png``
    or as the distributed zip ``images_<set>.zip`` (``images_background.zip``,
    ``images_evaluation.zip``, ``images_background_small1.zip``,
    ``images_background_small2.zip``). Indexes and decoded images are cached in memory per
    path and size; a missing set raises :class:`~metarl.core.errors.DatasetNotFoundError`
    and a corrupt one :class:`~metarl.core.errors.DatasetError`, both naming what was expected.
    """

    ways: int = dataclasses.field(default=5, metadata={"help": "classes per task (N-way) of the test protocol"})
    shots: int = dataclasses.field(default=1, metadata={"help": "support drawings per class (K-shot) of the test protocol"})
    queries: int = dataclasses.field(default=15, metadata={"help": "query drawings per class"})
    image_size: int = dataclasses.field(default=28, metadata={"help": "images are resized to this square size"})
    rotations: bool = dataclasses.field(
        default=True, metadata={"help": "augment training classes with 90/180/270° rotations (each a new class)"})
    data_root: str = dataclasses.field(
        default_factory=default_data_root,
        metadata={"help": "folder with images_<set>/ folders or images_<set>.zip files "
                          "(default: $METARL_OMNIGLOT, else ../shared/data/omniglot beside the repository)"})
    background: str = dataclasses.field(
        default="small1", metadata={"help": "training set(s): small1, small2, small1+small2, background, ..."})
    heldout: str = dataclasses.field(
        default="auto", metadata={"help": "set whose other alphabets are tested (auto: small1<->small2, else evaluation)"})
    train_scope: Literal["across", "within"] = dataclasses.field(
        default="across", metadata={"help": "training tasks mix alphabets (across) or use one alphabet (within)"})
    test_scope: Literal["within", "across"] = dataclasses.field(
        default="within", metadata={"help": "test/ood tasks use one alphabet (within, Lake et al.) or mix (across)"})

    task_type = OmniglotTask
    shifts: ClassVar[dict[str, str]] = IMAGE_SHIFTS
    valueless_shifts: ClassVar[frozenset[str]] = frozenset({"invert"})
    input_shifts: ClassVar[frozenset[str]] = frozenset(IMAGE_SHIFTS)
    ood_shift: ClassVar[str] = "rotate:45 plus a random quarter turn, on the test alphabets"

    def __post_init__(self) -> None:
        for name in ("ways", "shots", "queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size < 4:
            raise ValueError(f"image_size must be >= 4, got {self.image_size}")
        for name in (*self.background_sets, *self.heldout_sets):
            if name not in SET_DIRS:
                raise ValueError(f"unknown Omniglot set {name!r}; expected {' / '.join(SET_DIRS)} joined by '+'")

    @property
    def background_sets(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.background.split("+"))

    @property
    def heldout_sets(self) -> tuple[str, ...]:
        if self.heldout == "auto":
            return (AUTO_HELDOUT.get(self.background, "evaluation"),)
        return tuple(s.strip() for s in self.heldout.split("+"))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, self.image_size, self.image_size)

    def pool(self, split: str) -> ClassPool:
        """The classes of ``split`` (``test`` and ``ood`` share the held-out pool)."""
        train = tuple(set_index(self.data_root, s) for s in self.background_sets)
        if split == "train":
            return _pool(train, frozenset())
        exclude = frozenset(a for index in train for a in index.alphabets)
        pool = _pool(tuple(set_index(self.data_root, s) for s in self.heldout_sets), exclude)
        if not pool.keys:
            raise DatasetError(
                f"heldout={self.heldout!r} has no alphabet outside background={self.background!r}: nothing to test on"
            )
        return pool

    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[OmniglotTask]:
        pool = self.pool(split)
        turns = 4 if split == "train" and self.rotations else 1
        scope = self.train_scope if split == "train" else self.test_scope
        if scope == "within":
            eligible = [a for a, rows in pool.alphabet_rows.items() if len(rows) * turns >= self.ways]
            if not eligible:
                raise DatasetError(f"{split}: no alphabet has {self.ways} classes for {self.ways}-way within-alphabet "
                                   f"tasks (largest: {max(len(r) for r in pool.alphabet_rows.values()) * turns})")
        elif len(pool.keys) * turns < self.ways:
            raise DatasetError(f"{split}: {self.ways}-way tasks need {self.ways} classes, the split has "
                               f"{len(pool.keys) * turns}")
        tasks: list[OmniglotTask] = []
        for _ in range(n):
            if scope == "within":
                rows = pool.alphabet_rows[eligible[int(rng.integers(len(eligible)))]]
            else:
                rows = np.arange(len(pool.keys))
            pick = rng.choice(len(rows) * turns, self.ways, replace=False)
            angles = 90 * (pick % turns)
            if split == "ood":
                angles = 45 + 90 * rng.integers(0, 4, self.ways)
            keys = [pool.keys[r] for r in rows[pick // turns]]
            tasks.append(OmniglotTask(tuple(a for a, _ in keys), tuple(c for _, c in keys),
                                      tuple(int(x) for x in angles)))
        return tasks

    def check_task(self, task: OmniglotTask) -> None:
        if not len(task.alphabets) == len(task.characters) == len(task.angles) == self.ways:
            raise ValueError(f"a task of this family names {self.ways} classes (alphabet, character, angle), "
                             f"got {len(task.alphabets)}, {len(task.characters)} and {len(task.angles)}")
        if any(a % 45 for a in task.angles):
            raise ValueError(f"angles must be multiples of 45 degrees, got {task.angles}")

    def _locate_tasks(self, tasks: Sequence[OmniglotTask]) -> tuple[list[tuple[ClassPool, int]], np.ndarray, np.ndarray]:
        """Each task's (pool, fine angle) and its classes' pool rows and quarter turns."""
        train, heldout = self.pool("train"), None
        groups, rows, turns = [], [], []
        for task in map(self.validate_task, tasks):
            keys = list(zip(task.alphabets, task.characters, strict=True))
            pool = train
            if keys[0] not in train.row:
                heldout = heldout or self.pool("test")
                pool = heldout
            missing = [k for k in keys if k not in pool.row]
            if missing:
                raise DatasetError(f"classes {missing} are not among the {'train' if pool is train else 'held-out'} "
                                   f"classes of background={self.background!r}, heldout={self.heldout!r}")
            fine = {a % 90 for a in task.angles}
            if len(fine) != 1:
                raise ValueError(f"a task's angles must agree modulo 90 degrees, got {task.angles}")
            groups.append((pool, fine.pop()))
            rows.append([pool.row[k] for k in keys])
            turns.append([a // 90 for a in task.angles])
        return groups, np.array(rows, dtype=np.int64).reshape(len(tasks), self.ways), np.array(turns).reshape(
            len(tasks), self.ways)

    def _sample_episodes(self, tasks: Sequence[OmniglotTask], shots: int, queries: int, rng: np.random.Generator) -> Episode:
        """A batched episode: array code per group of tasks sharing a pool (usually one group)."""
        groups, rows, turns = self._locate_tasks(tasks)
        order: dict[tuple[int, int], list[int]] = {}
        for i, (pool, angle) in enumerate(groups):
            order.setdefault((id(pool), angle), []).append(i)
        parts: list[tuple[list[int], Episode]] = []
        for members in order.values():
            pool, angle = groups[members[0]]
            data = pool.images(self.image_size, angle)
            parts.append((members, classification_episodes(data, rows[members], shots, queries, rng, turns[members])))
        if len(parts) == 1:
            return parts[0][1]
        inverse = np.argsort(np.concatenate([m for m, _ in parts]))
        fields = [torch.cat([dataclasses.astuple(ep)[j] for _, ep in parts])[inverse] for j in range(4)]
        return Episode(*fields)

    def examples_available(self, tasks: Sequence[OmniglotTask]) -> int:
        """The fewest drawings any class of ``tasks`` has (20 in Omniglot)."""
        groups, rows, _ = self._locate_tasks(tasks)
        return int(min(pool.counts[r].min() for (pool, _), r in zip(groups, rows, strict=True)))

    def class_dataset(self, split: str = "train") -> tuple[ClassDataset, np.ndarray, np.ndarray]:
        pool = self.pool(split)
        rows, turns = rotation_classes(len(pool.keys), split == "train" and self.rotations)
        return pool.images(self.image_size, 0), rows, turns


_POOL_CACHE: dict[tuple[Any, ...], ClassPool] = {}


def _pool(indexes: tuple[SetIndex, ...], exclude: frozenset[str]) -> ClassPool:
    key = (tuple(id(i) for i in indexes), exclude)  # the pool holds its indexes, so their ids stay unique
    with _LOCK:
        if key not in _POOL_CACHE:
            _POOL_CACHE[key] = ClassPool.build(indexes, set(exclude))
        return _POOL_CACHE[key]

