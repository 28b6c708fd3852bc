"""Evaluation of few-shot classifiers: query accuracy as a function of the shot count.

Each task gets one episode with as many shots as the curve's largest ``k``; the curve's
points use nested subsets of its support (:func:`first_shots`) and the same queries, so
they are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from metarl.core.agent import EvalResult
from metarl.core.errors import DatasetError
from metarl.core.seeding import SHOTS_KEY, stream
from metarl.fewshot.episode import Episode, episode_ways, within_class_rank
from metarl.fewshot.family import ClassificationFamily

CURVE_SHOTS: tuple[int, ...] = (1, 2, 5, 10)
"""Shot counts of the supervised adaptation curve (``adaptation/query_accuracy_shots_<k>``)."""


def one_two_five(n: int) -> list[int]:
    """``1, 2, 5, 10, 20, 50, ...`` below ``n``, and ``n``: the points of a curve over shots or
    steps that stays cheap as ``n`` grows."""
    marks = {n}
    scale = 1
    while scale < n:
        marks |= {m * scale for m in (1, 2, 5) if m * scale < n}
        scale *= 10
    return sorted(marks)

ClassifyShots = Callable[[Episode, Sequence[int]], torch.Tensor]
"""``classify_shots(episode, ks) -> predictions [len(ks), tasks, queries]``: predicted query labels
of a batched episode, adapting on the first ``k`` shots of each class only, for each ``k``."""


def first_shots(support_y: torch.Tensor, ways: int, k: int) -> torch.Tensor:
    """Positions ``[tasks, ways * k]`` of the first ``k`` support examples of each class.

    The support order is random, so the first ``k`` are a uniformly random ``k``-subset; the
    selection is nested (the 1-shot support is part of the 2-shot one), which pairs the points
    of a shots curve.
    """
    keep = within_class_rank(support_y, ways) < k
    counts = keep.sum(dim=-1)
    if (counts != ways * k).any():
        raise ValueError(f"every class needs at least {k} support examples")
    return torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[..., : ways * k]


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
    family: ClassificationFamily[Any],
    tasks: Sequence[Any],
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
    ks, queries = curve_shots(family.shots, family.queries, family.examples_available(tasks), wanted_shots)
    rng = stream(seed, SHOTS_KEY)
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
        extra={"ways": int(family.ways), "queries_per_class": int(queries)},
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
    ways = episode_ways(episode)
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


def classify_with_support_statistics(
    episode: Episode,
    ks: Sequence[int],
    features: Callable[[torch.Tensor], torch.Tensor],
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor],
    norms: Sequence[torch.nn.modules.batchnorm._BatchNorm],
    device: torch.device,
) -> torch.Tensor:
    """Like :func:`classify_by_features`, after re-estimating the batch-norm statistics of
    ``norms`` on each task's ``k``-shot support set (test-time adaptation without labels:
    the statistics of the target domain replace the training domain's). The queries are
    not used to estimate them. Features are computed task by task (each task has its own
    statistics), predictions for all tasks at once. The layers' own statistics are restored
    afterwards."""
    ways = episode_ways(episode)
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in norms]
    sy = episode.support_y.to(device)
    out = []
    try:
        for k in ks:
            pos = first_shots(sy, ways, k)
            fs, fq = [], []
            for i in range(len(pos)):
                support = episode.support_x[i].to(device)[pos[i]]
                for m in norms:
                    m.reset_running_stats()
                    m.momentum = None  # a cumulative average: exactly the support set's statistics
                    m.train()
                features(support)
                for m in norms:
                    m.eval()
                fs.append(features(support))
                fq.append(features(episode.query_x[i].to(device)))
            out.append(predict(torch.stack(fs), sy.gather(1, pos), torch.stack(fq), ways).cpu())
    finally:
        for m, (momentum, state) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.load_state_dict(state)
    return torch.stack(out)
