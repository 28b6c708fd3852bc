"""Few-shot episodes from class-indexed data: N-way K-shot classification and K-shot regression.

A *class-indexed dataset* (:class:`ClassDataset`) is an array of examples per class. An
N-way K-shot episode picks N classes, draws ``K + Q`` distinct examples of each, gives the
first K to the support set and the rest to the query set, and relabels the N classes
``0 … N-1`` in a random order, so a label means nothing outside its episode (Vinyals et al.
2016, section 4.1). Quarter-turn rotations make new classes from old ones (Santoro et al.
2016; Snell et al. 2017 section 3.1). Everything is array code over a whole meta-batch, and
all randomness comes from a ``numpy.random.Generator`` passed in.

The module also holds what the supervised agents of ``agents/`` share: selecting the first
``k`` shots of each class from a larger support set, the shots-curve evaluator
(:func:`evaluate_classifier`, which reports ``query_accuracy`` per shot count), the agent
bases :class:`FewShotClassifier` (metric learners and fine-tuning) and :class:`FewShotAgent`
(MAML and the LSTM learner, classification or regression), and per-task losses and metrics.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from metarl.agent import Agent, EvalResult
from metarl.supervised import Episode, SupervisedFamily
from metarl.task import Task, TaskFamily, task_rng

CURVE_SHOTS: tuple[int, ...] = (1, 2, 5, 10)
"""Shot counts of the supervised adaptation curve (``adaptation/query_accuracy_shots_<k>``)."""


class DatasetError(ValueError):
    """Data that is corrupt, in the wrong layout, or too small for the episodes asked of it."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """Data that is not where it was expected (tests that need it skip on this error)."""


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


def classification_episode(
    data: ClassDataset, classes: Sequence[int], shots: int, queries: int, rng: np.random.Generator,
    quarter_turns: Sequence[int] | None = None, shuffle: bool = True,
) -> Episode:
    """One N-way K-shot episode (unbatched tensors); see :func:`classification_episodes`."""
    turns = None if quarter_turns is None else np.asarray(quarter_turns)[None]
    ep = classification_episodes(data, np.asarray(classes)[None], shots, queries, rng, turns, shuffle)
    return Episode(*(t[0] for t in dataclasses.astuple(ep)))


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


def uniform_inputs(rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    """Regression inputs ``~ U[low, high]`` of the given shape (e.g. ``(tasks, points, 1)``)."""
    return rng.uniform(low, high, size=shape)


# ---------------------------------------------------------------------------------------------
# Evaluation shared by few-shot classifiers
# ---------------------------------------------------------------------------------------------

ClassifyShots = Callable[[Episode, Sequence[int]], torch.Tensor]
"""``classify_shots(episode, ks) -> predictions [len(ks), tasks, queries]``: predicted query labels
of a batched episode, adapting on the first ``k`` shots of each class only, for each ``k``."""


def first_shots(support_y: torch.Tensor, ways: int, k: int) -> torch.Tensor:
    """Positions ``[tasks, ways * k]`` of the first ``k`` support examples of each class.

    The support order is random, so the first ``k`` are a uniformly random ``k``-subset; the
    selection is nested (the 1-shot support is part of the 2-shot one), which pairs the points
    of a shots curve.
    """
    onehot = torch.nn.functional.one_hot(support_y, ways)
    rank = onehot.cumsum(dim=-2).gather(-1, support_y.unsqueeze(-1)).squeeze(-1)  # 1-based rank within class
    keep = rank <= k
    counts = keep.sum(dim=-1)
    if (counts != ways * k).any():
        raise ValueError(f"every class needs at least {k} support examples")
    return torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[..., : ways * k]


def select_shots(episode: Episode, ways: int, k: int) -> Episode:
    """The episode with only the first ``k`` support examples of each class (batched)."""
    pos = first_shots(episode.support_y, ways, k)
    sx = episode.support_x.gather(1, pos.view(*pos.shape, *([1] * (episode.support_x.dim() - 2))).expand(
        *pos.shape, *episode.support_x.shape[2:]))
    return Episode(sx, episode.support_y.gather(1, pos), episode.query_x, episode.query_y)


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Class means ``[..., ways, dim]`` of support embeddings ``[..., shots * ways, dim]``
    (Snell et al. 2017, eq. 1)."""
    onehot = torch.nn.functional.one_hot(labels, ways).to(embeddings.dtype)  # [..., S, N]
    return (onehot.transpose(-1, -2) @ embeddings) / onehot.sum(dim=-2).unsqueeze(-1).clamp_min(1)


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[..., n, m]`` between rows of ``a [..., n, d]`` and ``b [..., m, d]``."""
    # The expansion |a|^2 + |b|^2 - 2 a.b is one matrix product: no [n, m, d] difference tensor.
    return ((a * a).sum(-1).unsqueeze(-1) + (b * b).sum(-1).unsqueeze(-2) - 2 * a @ b.transpose(-1, -2)).clamp_min(0)


def curve_shots(family_shots: int, family_queries: int, available: int,
                wanted: Sequence[int] = CURVE_SHOTS) -> tuple[list[int], int]:
    """The shot counts of an evaluation curve and the queries per class they leave.

    Every ``k`` in ``wanted`` that leaves at least one query per class is kept, and the
    family's own ``family_shots`` always; the query count is the family's, capped so that
    the largest ``k`` plus the queries fit in ``available`` examples per class.
    """
    if family_shots + 1 > available:
        raise DatasetError(f"{family_shots} shots leave no query example: classes have only {available} examples")
    ks = sorted({k for k in wanted if 0 < k < available} | {family_shots})
    queries = min(family_queries, available - ks[-1])
    return ks, queries


def evaluate_classifier(
    family: Any,
    tasks: Sequence[Task],
    seed: int,
    classify_shots: ClassifyShots,
    wanted_shots: Sequence[int] = CURVE_SHOTS,
    batch_size: int = 32,
) -> EvalResult:
    """Query accuracy of a few-shot classifier on ``tasks`` as a function of the shot count.

    Each task gets one episode with as many shots as the curve's largest ``k``; the curve's
    points use nested subsets of its support (:func:`first_shots`) and the same queries, so
    they are paired. The score is the accuracy at the family's ``shots``.
    """
    available = family.examples_available(tasks) if hasattr(family, "examples_available") else (
        family.shots + family.queries)
    ks, queries = curve_shots(family.shots, family.queries, available, wanted_shots)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(31,)))
    rows = []
    for i in range(0, len(tasks), batch_size):
        ep = family.sample_episodes(tasks[i : i + batch_size], ks[-1], queries, rng)
        pred = classify_shots(ep, ks)  # [len(ks), B, Q]
        rows.append((pred.cpu() == ep.query_y.unsqueeze(0)).double().mean(-1).T.numpy())
    curve = np.concatenate(rows) if rows else np.zeros((0, len(ks)))
    j = ks.index(family.shots)
    return EvalResult(
        x_name="shots", x=ks, curve_name="query_accuracy", curve=curve,
        score_name=f"query_accuracy_shots_{family.shots}", scores=curve[:, j],
        extra={"ways": int(family.num_outputs), "queries_per_class": int(queries)},
    )


def classify_by_features(
    episode: Episode,
    ks: Sequence[int],
    features: Callable[[torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor],
    device: torch.device,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted query labels ``[len(ks), tasks, queries]`` of a (batched) episode, adapting on
    the first ``k`` shots of each class for each ``k``.

    ``features`` maps inputs ``[M, *input_shape]`` to ``[M, D]`` (computed once per example,
    in chunks of ``chunk``); ``predict(support_features, support_y, query_features, ways)``
    maps ``[B, S, D]``, ``[B, S]``, ``[B, Q, D]`` to labels ``[B, Q]``. The number of ways is
    read from the support labels, so a 20-way benchmark episode works with a 5-way family.
    """
    b, s = episode.support_y.shape
    q = episode.query_x.shape[1]
    ways = int(episode.support_y.max()) + 1
    x = torch.cat([episode.support_x.flatten(0, 1), episode.query_x.flatten(0, 1)])
    feats = torch.cat([features(c.to(device)) for c in x.split(chunk)])
    fs, fq = feats[: b * s].view(b, s, -1), feats[b * s :].view(b, q, -1)
    sy = episode.support_y.to(device)
    out = []
    for k in ks:
        pos = first_shots(sy, ways, k)
        sub = fs.gather(1, pos.unsqueeze(-1).expand(*pos.shape, fs.shape[-1]))
        out.append(predict(sub, sy.gather(1, pos), fq, ways))
    return torch.stack(out).cpu()


class SupervisedAgent(Agent):
    """What every supervised agent keeps: the iteration count and two seeded streams,
    ``task_rng`` for training tasks and ``data_rng`` for their examples, saved in checkpoints
    (:meth:`stream_state`) so that a resumed run continues the same streams."""

    kind: ClassVar[str] = "supervised"

    def __init__(self, config: Any, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        self.task_rng = task_rng(seed, "train")
        self.data_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
        self.iterations = 0

    def stream_state(self) -> dict[str, Any]:
        """The iteration count and random streams, for :meth:`state_dict`."""
        return {"iterations": self.iterations, "task_rng": self.task_rng.bit_generator.state,
                "data_rng": self.data_rng.bit_generator.state}

    def load_stream_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`stream_state` saved (a weights-only state keeps the fresh streams)."""
        self.iterations = int(state.get("iterations", 0))
        if "task_rng" in state:
            self.task_rng.bit_generator.state = state["task_rng"]
            self.data_rng.bit_generator.state = state["data_rng"]


class FewShotClassifier(SupervisedAgent):
    """A few-shot classification agent: it embeds examples (:meth:`features`) and labels the
    queries of an episode from its support set (:meth:`predict`).

    Subclasses get :meth:`classify` (what the one-shot benchmark scores), :meth:`evaluate`
    (the ``query_accuracy`` curve over shot counts), the training task and data streams,
    and a training-task adaptation curve every ``config.curve_every`` iterations.
    """

    default_env: ClassVar[str] = "metarl/Omniglot-v0"
    eval_chunk: ClassVar[int] = 1024

    def __init__(self, config: Any, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        if getattr(family, "problem", None) != "classification":
            raise ValueError(f"{self.name} classifies, but {family.family_id or type(family).__name__} is a "
                             f"{getattr(family, 'problem', 'non-supervised')} family")
        super().__init__(config, family, seed, device)
        self.augment_rng = torch.Generator().manual_seed(seed)

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[M, D]`` of inputs ``[M, *input_shape]`` (evaluation mode, no gradient)."""

    @abc.abstractmethod
    def predict(self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        """Query labels ``[B, Q]`` from support features ``[B, S, D]``, labels ``[B, S]``, query features ``[B, Q, D]``."""

    def set_training(self, mode: bool) -> None:  # noqa: B027 (non-learners have no modules)
        """Put the agent's modules in training (``True``) or evaluation mode."""

    def classify_shots(self, episode: Episode, ks: Sequence[int]) -> torch.Tensor:
        """Predicted query labels ``[len(ks), tasks, queries]``, adapting on ``k`` shots per class for each ``k``
        (``[len(ks), queries]`` for an unbatched episode)."""
        batched = episode.support_y.dim() == 2
        ep = episode if batched else Episode(*(t.unsqueeze(0) for t in dataclasses.astuple(episode)))
        self.set_training(False)
        try:
            with torch.no_grad():
                preds = classify_by_features(ep, ks, self.features, self.predict, self.device, self.eval_chunk)
        finally:
            self.set_training(True)
        return preds if batched else preds[:, 0]

    def classify(self, episode: Episode) -> torch.Tensor:
        """Predicted labels of the episode's queries, adapting on its whole support set."""
        shots = int((episode.support_y == 0).sum(-1).min())
        return self.classify_shots(episode, [shots])[0]

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        return evaluate_classifier(self.family, tasks, seed, self.classify_shots,
                                   getattr(self.config, "eval_shots", CURVE_SHOTS))

    def progress(self) -> float:
        return min(1.0, self.iterations / self.config.iterations) if self.learns else 1.0

    def scheduled_lr(self) -> float:
        """``config.lr`` halved every ``config.lr_halve_every`` updates (Snell et al. 2017: every 2000 episodes)."""
        halve = self.config.lr_halve_every
        return self.config.lr * 0.5 ** (self.iterations // halve if halve else 0)

    def check_data(self) -> None:
        """Before the first update: fail now, not after training, if a split's data is missing.
        (Evaluation alone needs no training data, so agents are built without touching it.)"""
        if not getattr(self, "_data_checked", False):
            for split in ("train", "test"):
                self.family.sample_tasks(1, split)
            self._data_checked = True

    def training_curve(self) -> EvalResult | None:
        """Every ``config.curve_every`` iterations: the curve on ``config.curve_tasks`` fresh training tasks."""
        every = getattr(self.config, "curve_every", 0)
        if not every or self.iterations % every:
            return None
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(3, self.iterations)))
        tasks = self.family.sample_tasks(self.config.curve_tasks, "train", rng)
        return self.evaluate(tasks, seed=self.seed + self.iterations)

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """Training inputs, with a random affine distortion each when ``config.augment`` is set."""
        return random_affine(x, self.augment_rng) if getattr(self.config, "augment", False) else x

    def stream_state(self) -> dict[str, Any]:
        return {**super().stream_state(), "augment_rng": self.augment_rng.get_state()}

    def load_stream_state(self, state: dict[str, Any]) -> None:
        super().load_stream_state(state)
        if "augment_rng" in state:
            self.augment_rng.set_state(state["augment_rng"])


def episode_ways(episode: Episode) -> int:
    """Classes in a classification episode (labels are remapped to 0 .. ways-1)."""
    return int(episode.support_y.max()) + 1


def task_loss(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss over the last two dims' examples: MSE, or cross-entropy of logits.

    ``out`` is ``[..., n, outputs]``; ``y`` is ``[..., n, outputs]`` (regression) or
    ``[..., n]`` integer labels. Leading dims are kept (one loss per task).
    """
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none")
    return ce.view(y.shape).mean(-1)


def task_metric(problem: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reported metric per task: MSE (regression) or accuracy (classification)."""
    if problem == "regression":
        return ((out - y) ** 2).mean(dim=(-2, -1))
    return (out.argmax(-1) == y).float().mean(-1)


def within_class_rank(y: torch.Tensor, ways: int) -> torch.Tensor:
    """Index of each example among the examples of its class in ``y`` ``[tasks, n]`` (0 for the first)."""
    return F.one_hot(y, ways).cumsum(1).gather(-1, y.unsqueeze(-1)).squeeze(-1) - 1


def metric_name(problem: str) -> str:
    """``query_mse`` or ``query_accuracy``: the curve name of supervised evaluations."""
    return "query_mse" if problem == "regression" else "query_accuracy"


class FewShotAgent(SupervisedAgent):
    """Base of the agents that learn per task in a model (MAML, Meta-SGD, the LSTM learner), for
    classification or regression: training and evaluation episodes, seeded streams.

    The test protocol is the family's: its ``shots`` and ``queries`` (per class for
    classification) shape evaluation episodes, and training uses them unless the config's
    ``train_shots`` / ``train_queries`` are set.
    """

    default_env: ClassVar[str] = "metarl/Sinusoid-v0"

    def __init__(self, config: Any, family: TaskFamily, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        assert isinstance(family, SupervisedFamily)
        self.family: SupervisedFamily = family
        self.problem = family.problem
        self.eval_shots = int(getattr(family, "shots", 0) or config.train_shots)
        self.eval_queries = int(getattr(family, "queries", 0) or config.train_queries)
        self.shots = int(config.train_shots or self.eval_shots)
        self.queries = int(config.train_queries or self.eval_queries)
        if not (self.shots and self.queries):
            raise ValueError(f"{type(family).__name__} has no 'shots'/'queries' arguments: give --train-shots and "
                             f"--train-queries")
        self._curves: list[EvalResult] = []

    def progress(self) -> float:
        return min(1.0, self.iterations / self.config.iterations)

    def pooled_curve(self, result: EvalResult) -> EvalResult | None:
        """The training tasks' curve pooled over the last ``curve_every`` iterations, once
        every ``curve_every`` iterations (and at the end); ``None`` in between.

        Iterations of these agents take milliseconds, and the trainer draws a figure for
        every curve it gets: one per iteration would cost more than the training.
        """
        self._curves.append(result)
        if self.iterations % self.config.curve_every and self.progress() < 1.0:
            return None
        pooled = dataclasses.replace(result, curve=np.concatenate([c.curve for c in self._curves]),
                                     scores=np.concatenate([c.scores for c in self._curves]))
        self._curves = []
        return pooled

    def train_episodes(self) -> Episode:
        """A batched episode of ``meta_batch`` fresh training tasks, on the device."""
        tasks = self.family.sample_tasks(self.config.meta_batch, "train", self.task_rng)
        return self.family.sample_episodes(tasks, self.shots, self.queries, self.data_rng).to(self.device)

    def eval_episodes(self, tasks: Sequence[Task], seed: int) -> list[Episode]:
        """Evaluation episodes (the family's shots and queries) of ``tasks``, in chunks of
        ``eval_batch`` tasks, drawn from a stream seeded by ``seed``."""
        size = self.config.eval_batch
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
        return [self.family.sample_episodes(tasks[i:i + size], self.eval_shots, self.eval_queries, rng).to(self.device)
                for i in range(0, len(tasks), size)]

    def as_batch(self, episode: Episode) -> tuple[Episode, bool]:
        """A batched episode on the device, and whether the input was a single episode."""
        if self.problem != "classification":
            raise TypeError(f"classify() needs a classification family; {self.family.family_id or self.family} is regression")
        single = episode.support_x.dim() == len(self.family.input_shape) + 1
        batch = Episode.stack([episode]) if single else episode
        ways = episode_ways(batch)
        if ways > self.family.num_outputs:
            raise ValueError(
                f"the episode has {ways} classes but the model was trained for {self.family.num_outputs}; "
                f"train with the family's ways set to at least {ways}"
            )
        return batch.to(self.device), single


def training_family(family: Any, ways: int) -> Any:
    """The family with ``ways`` classes per task (``0`` keeps the family's)."""
    if not ways or ways == family.num_outputs:
        return family
    if (not dataclasses.is_dataclass(family) or isinstance(family, type)
            or "ways" not in {f.name for f in dataclasses.fields(family)}):
        raise ValueError(f"--train-ways needs a family with a 'ways' argument; {type(family).__name__} has none")
    return dataclasses.replace(family, ways=ways)
