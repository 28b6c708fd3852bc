"""Tasks and task families: the values and distributions every part of metarl shares.

A *task* is a small frozen dataclass (a goal, a set of arm probabilities, a mass).
A *family* is a distribution over tasks with three splits (``train``, ``test``, ``ood``)
and the means to build environments (RL) or episodes (supervised) for any task.
``TaskFamily`` is generic over its task type, so a family's methods take and return its
own tasks (``TaskFamily[BanditTask]``).
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np

from metarl.core.seeding import check_split, task_rng
from metarl.core.shift import Shift, parse_shifts

Split = Literal["train", "test", "ood"]

T = TypeVar("T", bound="Task")
TaskT = TypeVar("TaskT", bound="Task")


def _freeze(value: Any) -> Any:
    """Turn JSON lists (and numpy arrays) back into hashable nested tuples."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclasses.dataclass(frozen=True)
class Task:
    """Base class of all tasks: a frozen, hashable, JSON round-trippable value.

    Subclasses are frozen dataclasses whose fields are numbers, strings or (nested)
    tuples of them. ``Task.from_json(task.to_json()) == task`` holds exactly, because
    Python's ``json`` writes floats with ``repr`` precision.

    ``shift`` (keyword-only, on every task) records the distribution shifts applied to the
    task, as texts like ``"rotate:45.0"`` (``metarl.core.shift``); empty for an unshifted task.
    """

    shift: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        # Arrays and lists would make the task unhashable and mutable; store tuples.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            frozen = _freeze(value)
            if frozen is not value:
                object.__setattr__(self, f.name, frozen)

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The names of the task's own fields, in order (without ``shift``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "shift")

    def parameters(self) -> tuple[Any, ...]:
        """The task's own field values, in order (without ``shift``)."""
        return tuple(getattr(self, name) for name in self.parameter_names())

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the task's type name and its fields."""
        return {"type": type(self).__name__, **dataclasses.asdict(self)}

    def dumps(self) -> str:
        """The task as a JSON string."""
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any] | str) -> T:
        """Rebuild a task from :meth:`to_json` output (a dict or a JSON string)."""
        fields: dict[str, Any] = dict(json.loads(data) if isinstance(data, str) else data)
        type_name = fields.pop("type", cls.__name__)
        if type_name != cls.__name__:
            raise ValueError(f"JSON describes a {type_name}, not a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"unknown fields for {cls.__name__}: {sorted(unknown)}")
        return cls(**{k: _freeze(v) for k, v in fields.items()})


class TaskFamily(abc.ABC, Generic[TaskT]):
    """A distribution over tasks of type ``TaskT`` with ``train``, ``test`` and ``ood`` splits.

    Concrete families are frozen dataclasses whose fields are the family's keyword
    arguments (e.g. the bandit's ``k`` and ``n``); the CLIs build flags from them. A
    subclass sets ``task_type`` to its task class and implements :meth:`_sample_tasks`;
    :meth:`check_task` adds its own checks of a task's values.
    """

    kind: ClassVar[Literal["rl", "supervised"]]
    task_type: type[TaskT]
    """The family's task class (a class attribute)."""
    baselines: ClassVar[tuple[str, ...]] = ()
    """Non-learning algorithms (``--algo`` names) that ``metarl.train`` scores beside a trained
    agent on the same held-out tasks, so that a score has a reference."""
    shifts: ClassVar[dict[str, str]] = {}
    """The distribution shifts the family supports (``--shift NAME[:VALUE]``): name → what its
    value does. Implemented by :meth:`_apply_shift`."""
    valueless_shifts: ClassVar[frozenset[str]] = frozenset()
    """The shifts of :attr:`shifts` written without a value (``invert``)."""
    ood_shift: ClassVar[str] = ""
    """What the ``ood`` split is, named as a shift of the training distribution."""
    recommended: ClassVar[dict[str, dict[str, Any]]] = {}
    """Settings measured to beat an algorithm's defaults on this family: ``--algo`` name →
    {config field: value}. ``metarl.train`` starts from them; a flag or a ``--config`` file's
    agent section overrides each. Add one only with its measurement in ``experiments/RESULTS.md``."""

    def kwargs(self) -> dict[str, Any]:
        """The family's keyword arguments, as passed to the registry."""
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {}

    def sample_tasks(self, n: int, split: str = "train", rng: np.random.Generator | None = None,
                     shift: Sequence[str] = ()) -> list[TaskT]:
        """Draw ``n`` tasks of ``split`` from ``rng``, then apply ``shift``.

        Args:
            n: number of tasks.
            split: ``"train"``, ``"test"`` or ``"ood"``.
            rng: the generator to draw from; ``None`` uses ``task_rng(0, split)`` so a
                call without a generator is still reproducible. Global random state is
                never touched.
            shift: shifts to apply (``"rotate:45"``, ``"mass:2"``, ...; see :attr:`shifts`).
                Their values are drawn after the tasks, so the shifted tasks are the
                unshifted ones of the same seed, shifted.
        """
        check_split(split)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if rng is None:
            rng = task_rng(0, split)
        tasks = self._sample_tasks(n, split, rng)
        return self.shift_tasks(tasks, shift, rng) if shift else tasks

    def shift_tasks(self, tasks: Sequence[TaskT], shift: Sequence[str], rng: np.random.Generator) -> list[TaskT]:
        """``tasks`` with each shift of ``shift`` applied in order and recorded in their
        ``shift`` field (a range's value is drawn per task from ``rng``)."""
        out = list(tasks)
        for spec in parse_shifts(tuple(shift)):
            self.check_shift_name(spec.name)
            valueless = spec.name in self.valueless_shifts
            if valueless != (spec.low is None):
                raise ValueError(f"shift {spec.text!r}: {spec.name} " + (
                    "takes no value" if valueless else f"needs a value or a range, e.g. {spec.name}:1.5 or "
                    f"{spec.name}:1..2 ({self.shifts[spec.name]})"))
            values: list[float | None] = [None] * len(out) if valueless else [float(v) for v in spec.values(rng, len(out))]
            shifted = []
            for task, value in zip(out, values, strict=True):
                text = spec.name if value is None else f"{spec.name}:{value!r}"
                new = self.validate_task(self._apply_shift(task, spec.name, value, rng))
                shifted.append(dataclasses.replace(new, shift=(*task.shift, text)))
            out = shifted
        return out

    def check_shift_name(self, name: str) -> None:
        """Refuse a shift this family does not support, naming those it does."""
        if name not in self.shifts:
            known = ", ".join(f"{k} ({v})" for k, v in self.shifts.items()) or "none"
            raise ValueError(f"{type(self).__name__} has no shift {name!r}; its shifts: {known}")

    def _apply_shift(self, task: TaskT, name: str, value: float | None, rng: np.random.Generator) -> TaskT:
        """``task`` under the shift ``name`` with ``value`` (``None`` for a valueless shift);
        ``rng`` serves shifts that redraw part of the task (a prior). The default changes
        nothing: a shift of observations is applied where they are drawn, reading the task's
        ``shift`` field."""
        return task

    @abc.abstractmethod
    def _sample_tasks(self, n: int, split: str, rng: np.random.Generator) -> list[TaskT]:
        """Draw ``n`` tasks of a validated split."""

    def validate_task(self, task: Task) -> TaskT:
        """``task`` as one of this family's tasks, or an error saying what is wrong with it
        (the wrong type, or values :meth:`check_task` refuses)."""
        if not isinstance(task, self.task_type):
            raise TypeError(
                f"{type(self).__name__} expects {self.task_type.__name__} tasks, got {type(task).__name__}"
            )
        if not isinstance(task.shift, tuple) or not all(isinstance(t, str) for t in task.shift):
            raise ValueError(f"a task's shift must be a tuple of texts like 'rotate:45.0', got {task.shift!r}")
        for text in task.shift:
            self.check_shift_name(Shift.parse(text).name)
        self.check_task(task)
        return task

    def check_task(self, task: TaskT) -> None:  # noqa: B027 (families without value checks keep it)
        """Raise ``ValueError`` if ``task``'s values do not belong to this family."""

    def task_from_json(self, data: dict[str, Any] | str) -> TaskT:
        """Rebuild one of this family's tasks from JSON."""
        return self.validate_task(self.task_type.from_json(data))

