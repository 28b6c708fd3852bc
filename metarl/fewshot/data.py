"""Few-shot episodes from class-indexed data: N-way K-shot classification and K-shot regression.

A *class-indexed dataset* (:class:`ClassDataset`) is an array of examples per class. An
N-way K-shot episode picks N classes, draws ``K + Q`` distinct examples of each, gives the
first K to the support set and the rest to the query set, and relabels the N classes
``0 … N-1`` in a random order, so a label means nothing outside its episode (Vinyals et al.
2016, section 4.1). Quarter-turn rotations make new classes from old ones (Santoro et al.
2016; Snell et al. 2017 section 3.1). Everything is array code over a whole meta-batch, and
all randomness comes from a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from metarl.core.errors import DatasetError
from metarl.fewshot.episode import Episode


@dataclasses.dataclass(frozen=True, eq=False)
class ClassDataset:
    """Examples grouped by class: ``examples[c, i]`` is class ``c``'s ``i``-th example.

    Attributes:
        examples: ``[classes, max_count, *example_shape]`` (``uint8`` images or floats);
            rows past a class's count are padding and never sampled.
        counts: ``[classes]`` number of valid examples of each class.
        scale: episodes hold ``examples * scale`` as ``float32`` (``1/255`` for ``uint8``).
    """

    examples: np.ndarray
    counts: np.ndarray
    scale: float = 1.0 / 255.0

    def __post_init__(self) -> None:
        if self.examples.ndim < 2 or len(self.counts) != len(self.examples):
            raise DatasetError(
                f"examples must be [classes, count, ...] with one count per class, got {self.examples.shape} "
                f"and {len(self.counts)} counts"
            )
        if len(self.counts) and (self.counts.min() < 0 or self.counts.max() > self.examples.shape[1]):
            raise DatasetError("class counts must lie in [0, examples.shape[1]]")

    @staticmethod
    def from_classes(classes: Sequence[np.ndarray], scale: float = 1.0 / 255.0) -> ClassDataset:
        """Pad a list of per-class arrays ``[count_c, *example_shape]`` into one dataset."""
        if not classes:
            raise DatasetError("a class-indexed dataset needs at least one class")
        shape = classes[0].shape[1:]
        if any(c.shape[1:] != shape for c in classes):
            raise DatasetError(f"every example must have the shape {shape}")
        counts = np.array([len(c) for c in classes], dtype=np.int64)
        examples = np.zeros((len(classes), int(counts.max()), *shape), dtype=classes[0].dtype)
        for i, c in enumerate(classes):
            examples[i, : len(c)] = c
        return ClassDataset(examples, counts, scale)

    @property
    def num_classes(self) -> int:
        return int(len(self.counts))

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.examples.shape[2:])

    def subset(self, classes: np.ndarray) -> ClassDataset:
        """The dataset restricted to ``classes`` (in that order)."""
        return ClassDataset(self.examples[classes], self.counts[classes], self.scale)

    def concat(self, other: ClassDataset) -> ClassDataset:
        """This dataset's classes followed by ``other``'s."""
        m = max(self.examples.shape[1], other.examples.shape[1])
        pad = [np.pad(d.examples, [(0, 0), (0, m - d.examples.shape[1])] + [(0, 0)] * (d.examples.ndim - 2))
               for d in (self, other)]
        return ClassDataset(np.concatenate(pad), np.concatenate([self.counts, other.counts]), self.scale)


def _rotate_quarter_turns(x: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Rotate ``x[i]`` (images in the last two axes) by ``turns[i]`` quarter turns, counter-clockwise."""
    out = x.copy()
    for r in (1, 2, 3):
        mask = turns % 4 == r
        if mask.any():
            out[mask] = np.rot90(x[mask], r, axes=(-2, -1))
    return out


def classification_episodes(
    data: ClassDataset,
    classes: np.ndarray,
    shots: int,
    queries: int,
    rng: np.random.Generator,
    quarter_turns: np.ndarray | None = None,
    shuffle: bool = True,
) -> Episode:
    """A meta-batch of N-way K-shot episodes, one per row of ``classes``.

    Args:
        data: the class-indexed dataset to draw from.
        classes: ``[tasks, ways]`` dataset class indices of each episode (distinct per row).
        shots: support examples per class (K).
        queries: query examples per class (Q).
        rng: the only source of randomness.
        quarter_turns: ``[tasks, ways]`` counter-clockwise quarter turns applied to every example
            of a class (a rotated class is a new class); ``None`` for none.
        shuffle: shuffle the order of the support and of the query examples (else label-major).

    Returns:
        A batched :class:`Episode`: ``support_x`` ``[tasks, ways * shots, *example_shape]`` float32,
        ``support_y`` ``[tasks, ways * shots]`` int64 in ``0 … ways-1`` (a random relabelling of
        the episode's classes); the query set likewise with ``ways * queries`` rows. Support and
        query never share an example.
    """
    classes = np.asarray(classes, dtype=np.int64)
    if classes.ndim != 2:
        raise ValueError(f"classes must be [tasks, ways], got shape {classes.shape}")
    if shots < 1 or queries < 0:
        raise ValueError(f"need shots >= 1 and queries >= 0, got shots={shots}, queries={queries}")
    b, n = classes.shape
    if classes.size and (classes.min() < 0 or classes.max() >= data.num_classes):
        raise ValueError(f"class indices must lie in [0, {data.num_classes})")
    turns = None if quarter_turns is None else np.broadcast_to(np.asarray(quarter_turns, dtype=np.int64) % 4, (b, n))
    ids = classes * 4 + (0 if turns is None else turns)  # a rotated class is a class of its own
    if n > 1 and (np.diff(np.sort(ids, axis=1), axis=1) == 0).any():
        raise ValueError("the classes (with their rotations) of an episode must be distinct")
    need = shots + queries
    counts = data.counts[classes]
    if counts.size and counts.min() < need:
        raise DatasetError(
            f"{shots} shots + {queries} queries need {need} examples per class, but a class has only {counts.min()}"
        )
    # K+Q distinct examples per class: the smallest of i.i.d. uniform keys, padding keyed last.
    m = data.examples.shape[1]
    keys = rng.random((b, n, m))
    keys[np.arange(m)[None, None, :] >= counts[..., None]] = 2.0
    idx = np.argsort(keys, axis=-1)[..., :need]
    x = data.examples[classes[..., None], idx]  # [b, n, K+Q, *shape]
    if turns is not None:
        x = _rotate_quarter_turns(x.reshape(b * n, *x.shape[2:]), turns.reshape(-1)).reshape(x.shape)
    labels = rng.permuted(np.broadcast_to(np.arange(n), (b, n)), axis=1)  # the label of each class
    shape = data.example_shape

    def part(xs: np.ndarray, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs = xs.reshape(b, n * k, *shape)
        ys = np.repeat(labels, k, axis=1)
        if shuffle and k:
            order = np.argsort(rng.random((b, n * k)), axis=1)
            xs = xs[np.arange(b)[:, None], order]
            ys = np.take_along_axis(ys, order, axis=1)
        return (torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32) * np.float32(data.scale)),
                torch.from_numpy(np.ascontiguousarray(ys)))

    sx, sy = part(x[:, :, :shots], shots)
    qx, qy = part(x[:, :, shots:], queries)
    return Episode(sx, sy, qx, qy)


def labelled_batch(
    data: ClassDataset, class_rows: np.ndarray, class_turns: np.ndarray, batch_size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """An ordinary classification minibatch over global class ids (for pretraining).

    Global class ``c`` is dataset row ``class_rows[c]`` turned ``class_turns[c]`` quarter turns
    (:func:`rotation_classes`). Classes are drawn uniformly, then an example of each uniformly.

    Returns:
        ``x`` ``[batch_size, *example_shape]`` float32 and ``y`` ``[batch_size]`` int64 global ids.
    """
    y = rng.integers(0, len(class_rows), batch_size)
    rows = class_rows[y]
    idx = (rng.random(batch_size) * data.counts[rows]).astype(np.int64)
    x = _rotate_quarter_turns(data.examples[rows, idx], class_turns[y])
    return torch.from_numpy(x.astype(np.float32) * np.float32(data.scale)), torch.from_numpy(y)


def random_affine(
    x: torch.Tensor, generator: torch.Generator, rotate_deg: float = 10.0, scale: float = 0.1, shear: float = 0.1,
    shift: float = 0.1,
) -> torch.Tensor:
    """Distort each image of ``x [M, C, H, W]`` by its own random affine map (bilinear, zero fill).

    Rotation ``~ U[-rotate_deg, rotate_deg]``, scale ``~ U[1 - scale, 1 + scale]``, shear
    ``~ U[-shear, shear]``, shift ``~ U[-shift, shift]`` of the half-width: the variation between
    drawers of one character, which Omniglot's 20 drawings per class sample only thinly.
    Parameters are drawn on the CPU from ``generator``, so results do not depend on the device.
    """
    m = len(x)
    u = torch.rand(m, 5, generator=generator) * 2 - 1
    angle, s = u[:, 0] * rotate_deg * torch.pi / 180, 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin + u[:, 2] * shear, u[:, 3] * shift], 1),
                         torch.stack([sin, cos, u[:, 4] * shift], 1)], 1).to(x.device, x.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, align_corners=False)


def rotation_classes(num_classes: int, rotations: bool) -> tuple[np.ndarray, np.ndarray]:
    """Augmented class ids: ``(base class, quarter turns)`` of each of ``num_classes * 4``
    rotated classes, or of the ``num_classes`` plain ones when ``rotations`` is false."""
    k = 4 if rotations else 1
    ids = np.arange(num_classes * k)
    return ids // k, ids % k


def regression_episode(x: np.ndarray, y: np.ndarray, shots: int) -> Episode:
    """Split K-shot regression samples into support (the first ``shots``) and query (the rest).

    Args:
        x: inputs ``[..., shots + queries, input_dim]`` (a leading task axis for a meta-batch).
        y: targets ``[..., shots + queries, output_dim]``.
        shots: support points; draw ``x`` i.i.d. so that the split is a random one.
    """
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"x {x.shape} and y {y.shape} must agree in all but the last axis")
    if not 0 < shots <= x.shape[-2]:
        raise ValueError(f"shots must lie in [1, {x.shape[-2]}], got {shots}")

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return Episode(t(x[..., :shots, :]), t(y[..., :shots, :]), t(x[..., shots:, :]), t(y[..., shots:, :]))


