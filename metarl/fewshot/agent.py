"""The bases of the supervised (few-shot) agents and their configs.

- :class:`SupervisedAgent`: seeded task and example streams saved in checkpoints, the
  iteration budget, one optimiser step, and :meth:`~SupervisedAgent.classify` (what the
  Omniglot one-shot benchmark scores).
- :class:`FewShotClassifier`: agents that embed examples and label queries from the support
  set (metric learners, fine-tuning, nearest neighbour); evaluated by the shots curve.
- :class:`TrainedClassifier`: those of them that train (ProtoNets, Siamese, fine-tuning):
  learning-rate halving, augmentation, a training-task curve every few updates.
- :class:`FewShotAgent`: agents that learn per task in a model (MAML, the LSTM learner),
  for classification or regression.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from metarl.core.agent import Agent, EvalResult, optimizer_step
from metarl.core.checks import check_memory, check_non_negative, check_positive
from metarl.core.distributed import own_slice, shard, world
from metarl.core.seeding import DATA_KEY, EVAL_KEY, RANK_KEY, Streams, stream, task_rng, torch_generator
from metarl.core.task import Task
from metarl.fewshot.data import random_affine
from metarl.fewshot.episode import Episode, episode_ways
from metarl.fewshot.evaluation import (
    CURVE_SHOTS,
    classify_by_features,
    classify_with_support_statistics,
    evaluate_classifier,
)
from metarl.fewshot.family import ClassificationFamily, SupervisedFamily

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Settings of every few-shot classifier: the shot counts of its evaluation curve."""

    eval_shots: tuple[int, ...] = dataclasses.field(
        default=CURVE_SHOTS, metadata={"help": "shot counts of the evaluation curve (those the data allow)"})

    def __post_init__(self) -> None:
        if not self.eval_shots or min(self.eval_shots) < 1:
            raise ValueError(f"--eval-shots must be positive shot counts, got {self.eval_shots}")


@dataclasses.dataclass(frozen=True)
class TrainedClassifierConfig(ClassifierConfig):
    """Settings shared by the classifiers that train a Conv-4 (ProtoNets, Siamese, fine-tuning)."""

    iterations: int = dataclasses.field(default=3000, metadata={"help": "training budget in updates"})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Adam learning rate"})
    lr_halve_every: int = dataclasses.field(default=2000, metadata={"help": "halve the learning rate every N updates (0: never)"})
    channels: int = dataclasses.field(default=64, metadata={"help": "filters per convolution"})
    augment: bool = dataclasses.field(
        default=False, metadata={"help": "distort each training image by a random affine map (±10°, ±10% scale and shift, shear)"})
    curve_every: int = dataclasses.field(default=250, metadata={"help": "log a training-task adaptation curve every N updates (0: never)"})
    curve_tasks: int = dataclasses.field(default=32, metadata={"help": "training tasks in that curve"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("iterations", "lr", "channels", "curve_tasks"))
        check_non_negative(self, ("lr_halve_every", "curve_every"))


@dataclasses.dataclass(frozen=True)
class EpisodicTrainingConfig(TrainedClassifierConfig):
    """Training on N-way K-shot episodes, which may be harder than the test protocol."""

    train_ways: int = dataclasses.field(default=20, metadata={"help": "classes per training episode (0: the family's ways)"})
    train_shots: int = dataclasses.field(default=0, metadata={"help": "support examples per class in training (0: the family's shots)"})
    train_queries: int = dataclasses.field(default=5, metadata={"help": "query examples per class in training"})
    meta_batch: int = dataclasses.field(default=1, metadata={"help": "episodes per update"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("train_queries", "meta_batch"))
        check_non_negative(self, ("train_ways", "train_shots"))


@dataclasses.dataclass(frozen=True)
class FewShotLearnerConfig:
    """Settings shared by the agents that learn per task in a model (MAML, the LSTM learner)."""

    iterations: int = dataclasses.field(default=20_000, metadata={"help": "meta-iterations (outer updates) to train"})
    meta_batch: int = dataclasses.field(default=32, metadata={"help": "tasks per meta-update"})
    train_shots: int = dataclasses.field(
        default=0, metadata={"help": "support examples per task (per class) in training (0: the family's shots)"})
    train_queries: int = dataclasses.field(
        default=0, metadata={"help": "query examples per task (per class) in training (0: the family's queries)"})
    eval_batch: int = dataclasses.field(default=250, metadata={"help": "evaluation tasks adapted at once"})
    curve_every: int = dataclasses.field(
        default=100, metadata={"help": "log the training tasks' adaptation curve, pooled over N iterations, every N iterations"})

    def __post_init__(self) -> None:
        check_positive(self, ("iterations", "meta_batch", "eval_batch", "curve_every"))
        check_non_negative(self, ("train_shots", "train_queries"))


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------


class SupervisedAgent(Agent):
    """What every supervised agent keeps: the iteration count and seeded streams —
    ``task_rng`` for training tasks, ``data_rng`` for their examples, and any a subclass
    adds to :attr:`streams` — saved in checkpoints (:meth:`stream_state`) so that a resumed
    run continues the same streams."""

    kind: ClassVar[str] = "supervised"
    family: SupervisedFamily[Any]
    optimizer: torch.optim.Optimizer

    def __init__(self, config: Any, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        if not isinstance(family, SupervisedFamily):
            raise TypeError(f"{self.name} needs a supervised family, got {type(family).__name__}")
        # Under torchrun every process draws the whole meta-batch's tasks from the same stream
        # and takes its share (:meth:`own_tasks`); the examples are drawn from its own stream.
        rank = world().rank
        self.task_rng = task_rng(seed, "train")
        self.data_rng = stream(seed, DATA_KEY) if rank == 0 else stream(seed, DATA_KEY, RANK_KEY, rank)
        self.streams = Streams(task_rng=self.task_rng, data_rng=self.data_rng)
        self.iterations = 0
        self._data_checked = False

    @abc.abstractmethod
    def classify(self, episode: Episode) -> torch.Tensor:
        """Predicted query labels of a classification episode (single or batched), after
        adapting on its whole support set."""

    def progress(self) -> float:
        return min(1.0, self.iterations / self.config.iterations) if self.learns else 1.0

    def own_tasks(self, family: SupervisedFamily[Any], meta_batch: int) -> list[Task]:
        """This process's share of a meta-batch of ``meta_batch`` fresh training tasks (all of
        them without data parallelism; the agent's constructor checked that it divides)."""
        return family.sample_tasks(meta_batch, "train", self.task_rng)[own_slice(meta_batch)]

    def check_batch_memory(self, episodes: int, examples: int, what: str) -> None:
        """Refuse a training batch of ``episodes`` episodes of ``examples`` inputs each whose
        inputs alone would not fit in memory (``what`` names the settings)."""
        size = math.prod(self.family.input_shape)
        check_memory(4.0 * episodes * examples * size, what)

    def check_data(self) -> None:
        """Before the first update: fail now, not after training, if a split's data is missing.
        (Evaluation alone needs no training data, so agents are built without touching it.)"""
        if not self._data_checked:
            for split in ("train", "test"):
                self.family.sample_tasks(1, split)
            self._data_checked = True

    def update(self, loss: torch.Tensor, max_grad_norm: float = 0.0, lr: float | None = None) -> float:
        """One step of :attr:`optimizer` on ``loss`` (see :func:`metarl.core.agent.optimizer_step`),
        counted as an iteration; returns the gradient norm."""
        norm = optimizer_step(self.optimizer, loss, max_grad_norm, lr)
        self.iterations += 1
        return norm

    def stream_state(self) -> dict[str, Any]:
        """The iteration count and random streams, for :meth:`state_dict`."""
        return {"iterations": self.iterations, **self.streams.state_dict()}

    def load_stream_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`stream_state` saved (a weights-only state keeps the fresh streams)."""
        self.iterations = int(state.get("iterations", 0))
        self.streams.load_state_dict(state)

    def checkpointed(self) -> dict[str, Any]:
        """The objects (with ``state_dict``/``load_state_dict``) a checkpoint holds, by key:
        networks first, then ``optimizer`` and ``scheduler``, which a weights-only state may lack."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {**{key: obj.state_dict() for key, obj in self.checkpointed().items()}, **self.stream_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, obj in self.checkpointed().items():
            if key in state or key not in ("optimizer", "scheduler"):
                obj.load_state_dict(state[key])
        self.load_stream_state(state)


class FewShotClassifier(SupervisedAgent):
    """A few-shot classification agent: it embeds examples (:meth:`features`) and labels the
    queries of an episode from its support set (:meth:`predict`).

    Subclasses get :meth:`classify`, :meth:`evaluate` (the ``query_accuracy`` curve over shot
    counts) and the training task and data streams.
    """

    default_env: ClassVar[str] = "metarl/Omniglot-v0"
    eval_chunk: ClassVar[int] = 1024
    config: ClassifierConfig
    family: ClassificationFamily[Any]
    support_statistics: bool = False
    """Test-time adaptation: re-estimate batch-norm statistics on each episode's support set
    before classifying (``python -m metarl.evaluate`` sets it for its TTA baseline)."""

    def __init__(self, config: ClassifierConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        if not isinstance(family, ClassificationFamily):
            what = family.problem if isinstance(family, SupervisedFamily) else family.kind
            raise ValueError(f"{self.name} classifies, but {type(family).__name__} is a {what} family "
                             "(maml and lstm learn regression too)")
        super().__init__(config, family, seed, device)

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
        ep = episode if batched else episode.batched()
        self.set_training(False)
        try:
            with torch.no_grad():
                if self.support_statistics:
                    preds = classify_with_support_statistics(ep, ks, self.features, self.predict, self.norm_layers(),
                                                             self.device)
                else:
                    preds = classify_by_features(ep, ks, self.features, self.predict, self.device, self.eval_chunk)
        finally:
            self.set_training(True)
        return preds if batched else preds[:, 0]

    def norm_layers(self) -> list[torch.nn.modules.batchnorm._BatchNorm]:
        """The batch-norm layers of the agent's networks (those with running statistics)."""
        modules = [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]
        return [m for net in modules for m in net.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]

    def classify(self, episode: Episode) -> torch.Tensor:
        shots = int((episode.support_y == 0).sum(-1).min())
        return self.classify_shots(episode, [shots])[0]

    def evaluate(self, tasks: Sequence[Task], seed: int = 0) -> EvalResult:
        return evaluate_classifier(self.family, tasks, seed, self.classify_shots, self.config.eval_shots)


class TrainedClassifier(FewShotClassifier):
    """A few-shot classifier that trains (ProtoNets, Siamese, fine-tuning): its learning rate
    halves on a schedule, training images may be distorted, and a training-task curve is
    logged every ``curve_every`` updates."""

    config: TrainedClassifierConfig
    # Convolutions and linear layers run in bfloat16 under autocast, while the losses' softmax,
    # log and distances stay in float32 (autocast's own lists); plain first-order gradients.
    amp_refusal: ClassVar[str | None] = None

    def __init__(self, config: TrainedClassifierConfig, family: Any, seed: int = 0,
                 device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        rank = world().rank
        self.augment_rng = torch_generator(seed if rank == 0 else int(stream(seed, RANK_KEY, rank).integers(2**62)))
        self.streams.add(augment_rng=self.augment_rng)

    def scheduled_lr(self) -> float:
        """``config.lr`` halved every ``config.lr_halve_every`` updates (Snell et al. 2017: every 2000 episodes)."""
        halve = self.config.lr_halve_every
        return self.config.lr * 0.5 ** (self.iterations // halve if halve else 0)

    def step(self, loss: torch.Tensor) -> None:
        """One update at the scheduled learning rate."""
        self.update(loss, lr=self.scheduled_lr())

    def training_curve(self) -> EvalResult | None:
        """Every ``curve_every`` iterations: the curve on ``curve_tasks`` fresh training tasks."""
        every = self.config.curve_every
        if not every or self.iterations % every:
            return None
        tasks = self.family.sample_tasks(self.config.curve_tasks, "train", stream(self.seed, EVAL_KEY, self.iterations))
        return self.evaluate(tasks, seed=self.seed + self.iterations)

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """Training inputs, with a random affine distortion each when ``config.augment`` is set."""
        return random_affine(x, self.augment_rng) if self.config.augment else x


class EpisodicClassifier(TrainedClassifier):
    """A classifier trained on N-way K-shot episodes through one embedding network
    :attr:`net` (ProtoNets, Siamese): :meth:`training_episode` draws a meta-batch and embeds
    it, and the network, optimiser and streams make the checkpoint."""

    config: EpisodicTrainingConfig
    net: torch.nn.Module

    def __init__(self, config: EpisodicTrainingConfig, family: Any, seed: int = 0,
                 device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        self.train_family = training_family(self.family, config.train_ways)
        self.train_shots = config.train_shots or self.family.shots
        shard(config.meta_batch, "--meta-batch")  # under torchrun: refuse an uneven split now, not at an update
        self.check_batch_memory(config.meta_batch, self.train_family.ways * (self.train_shots + config.train_queries),
                                f"--meta-batch {config.meta_batch} of {self.train_family.ways}-way episodes")

    def set_training(self, mode: bool) -> None:
        self.net.train(mode)

    def training_episode(self) -> tuple[Episode, torch.Tensor, torch.Tensor]:
        """A meta-batch of ``meta_batch`` training episodes (on the device) and the features of
        its support ``[B, S, D]`` and query ``[B, Q, D]`` examples, with gradients."""
        self.check_data()
        tasks = self.own_tasks(self.train_family, self.config.meta_batch)
        ep = self.train_family.sample_episodes(tasks, self.train_shots, self.config.train_queries, self.data_rng)
        b, s = ep.support_y.shape
        # Support and query go through the network together, so batch norm sees one batch per update.
        z = self.features(self.augmented(torch.cat([ep.support_x.flatten(0, 1), ep.query_x.flatten(0, 1)])))
        return ep.to(self.device), z[: b * s].view(b, s, -1), z[b * s :].view(b, -1, z.shape[-1])

    def checkpointed(self) -> dict[str, Any]:
        return {"net": self.net, "optimizer": self.optimizer}


class FewShotAgent(SupervisedAgent):
    """Base of the agents that learn per task in a model (MAML, Meta-SGD, the LSTM learner), for
    classification or regression: training and evaluation episodes, seeded streams.

    The test protocol is the family's: its ``shots`` and ``queries`` (per class for
    classification) shape evaluation episodes, and training uses them unless the config's
    ``train_shots`` / ``train_queries`` are set.
    """

    default_env: ClassVar[str] = "metarl/Sinusoid-v0"
    config: FewShotLearnerConfig

    def __init__(self, config: FewShotLearnerConfig, family: Any, seed: int = 0, device: torch.device | str = "cpu"):
        super().__init__(config, family, seed, device)
        self.problem = self.family.problem
        self.shots = config.train_shots or self.family.shots
        self.queries = config.train_queries or self.family.queries
        shard(config.meta_batch, "--meta-batch")  # under torchrun: refuse an uneven split now, not at an update
        per_class = self.family.num_outputs if self.problem == "classification" else 1
        self.check_batch_memory(config.meta_batch, per_class * (self.shots + self.queries),
                                f"--meta-batch {config.meta_batch} with {self.shots} shots and {self.queries} queries")
        self._curves: list[EvalResult] = []

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
        self.check_data()
        tasks = self.own_tasks(self.family, self.config.meta_batch)
        return self.family.sample_episodes(tasks, self.shots, self.queries, self.data_rng).to(self.device)

    def eval_episodes(self, tasks: Sequence[Task], seed: int) -> list[Episode]:
        """Evaluation episodes (the family's shots and queries) of ``tasks``, in chunks of
        ``eval_batch`` tasks, drawn from a stream seeded by ``seed``."""
        size = self.config.eval_batch
        rng = stream(seed, EVAL_KEY)
        shots, queries = self.family.shots, self.family.queries
        return [self.family.sample_episodes(tasks[i:i + size], shots, queries, rng).to(self.device)
                for i in range(0, len(tasks), size)]

    def as_batch(self, episode: Episode) -> tuple[Episode, bool]:
        """A batched episode on the device, and whether the input was a single episode."""
        if self.problem != "classification":
            raise TypeError(f"classify() needs a classification family; {type(self.family).__name__} is regression")
        single = episode.support_x.dim() == len(self.family.input_shape) + 1
        batch = episode.batched() if single else episode
        ways = episode_ways(batch)
        if ways > self.family.num_outputs:
            raise ValueError(
                f"the episode has {ways} classes but the model was trained for {self.family.num_outputs}; "
                f"train with the family's ways set to at least {ways}"
            )
        return batch.to(self.device), single


def training_family(family: ClassificationFamily[Any], ways: int) -> ClassificationFamily[Any]:
    """The family with ``ways`` classes per task (``0`` keeps the family's)."""
    if not ways or ways == family.ways:
        return family
    if not dataclasses.is_dataclass(family) or "ways" not in {f.name for f in dataclasses.fields(family)}:
        raise ValueError(f"--train-ways needs a family with a 'ways' argument; {type(family).__name__} has none")
    return dataclasses.replace(family, ways=ways)  # type: ignore[type-var]  # a dataclass instance, checked above
