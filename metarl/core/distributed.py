"""Data parallelism for runs started by ``torchrun``: which process this is, its share of a
meta-batch, and the collective operations the agents and the trainer need.

``torchrun --nproc_per_node=N -m metarl.train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and a rendezvous in their environment; :func:`init_from_env` joins them in one
process group (gloo on CPU, NCCL on CUDA). Each process takes its share of every meta-batch
(:func:`shard`), and gradients are averaged over the processes before each step
(:func:`all_reduce_grads`, called by :func:`metarl.core.agent.optimizer_step`), so all
processes hold the same parameters throughout. A plain ``python -m metarl.train`` is a world of
one: every function here is then the identity, and no process group exists.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from metarl.core.errors import UsageError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes logs, checkpoints and reports (rank 0)."""
        return self.rank == 0


def world() -> World:
    """The current world: the process group's, or a world of one when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def launched_by_torchrun() -> bool:
    """Whether the environment asks for more than one process (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> World:
    """Join the process group torchrun described in the environment (once); return the world.

    The backend follows the device: NCCL for CUDA (each process on GPU ``LOCAL_RANK``), gloo
    otherwise. Without torchrun's variables this is a world of one and nothing is initialised.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return world()
    if not dist.is_available():
        raise UsageError("WORLD_SIZE > 1 (torchrun), but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return world()


def process_device(device: torch.device) -> torch.device:
    """The device of this process: CUDA device ``LOCAL_RANK`` when training on CUDA."""
    if device.type == "cuda" and device.index is None and world().size > 1:
        return torch.device("cuda", world().local_rank)
    return device


def shutdown() -> None:
    """Leave the process group, if any (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()  # no process tears the group down while another still uses it
        finally:
            dist.destroy_process_group()


def shard(total: int, flag_name: str) -> int:
    """This process's share of a meta-batch of ``total`` (tasks, trials, episodes).

    The meta-batch splits evenly, so that the average of the processes' gradients is the
    gradient of the whole meta-batch; a size that does not divide is a usage error.
    """
    size = world().size
    if total % size:
        raise UsageError(f"{flag_name} {total} cannot be split evenly across {size} processes (torchrun "
                         f"--nproc_per_node); use a multiple of {size}")
    return total // size


def own_slice(total: int) -> slice:
    """The rows of a meta-batch of ``total`` that this process takes (contiguous, in rank order)."""
    w = world()
    per = total // w.size
    return slice(w.rank * per, (w.rank + 1) * per)


def split_evenly(items: Sequence[T]) -> list[T]:
    """This process's part of ``items`` for evaluation: contiguous parts in rank order, the first
    ``len % size`` parts one longer, so that gathering them restores the order."""
    w = world()
    base, extra = divmod(len(items), w.size)
    start = w.rank * base + min(w.rank, extra)
    return list(items[start : start + base + (w.rank < extra)])


def _group_device(tensor: torch.Tensor) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the processes (a new tensor on ``tensor``'s device)."""
    if world().size == 1:
        return tensor
    buf = tensor.detach().to(_group_device(tensor), copy=True)
    dist.all_reduce(buf)
    return buf.to(tensor.device)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the processes."""
    size = world().size
    return tensor if size == 1 else all_reduce_sum(tensor) / size


def mean_scalars(values: dict[str, float]) -> dict[str, float]:
    """Each scalar averaged over the processes (one collective for all of them), for logging."""
    if world().size == 1 or not values:
        return values
    keys = sorted(values)
    means = all_reduce_mean(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
    return dict(zip(keys, means.tolist(), strict=True))


def all_reduce_grads(params: Sequence[torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor | None:
    """Average the gradients of ``params`` over the processes, in place, in one collective.

    A parameter without a gradient on this process counts as a zero gradient (another
    process's minibatch may have reached it). ``extra``, a small tensor, is summed in the
    same collective and returned (e.g. a flag that some process saw a non-finite loss).
    """
    size = world().size
    if size == 1:
        return extra
    params = [p for p in params if p.requires_grad]
    pieces = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    if extra is not None:
        pieces.append(extra.reshape(-1).to(pieces[0].dtype if pieces else extra.dtype))
    flat = all_reduce_sum(torch.cat(pieces))
    i = 0
    for p in params:
        n = p.numel()
        p.grad = (flat[i : i + n] / size).view_as(p).to(p.dtype)
        i += n
    return flat[i:].view_as(extra) if extra is not None else None


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every process."""
    if world().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: T) -> list[T]:
    """Every process's ``obj``, in rank order, on every process."""
    size = world().size
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on some process (every process gets the same answer)."""
    if world().size == 1:
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)])).item() > 0)


def barrier() -> None:
    """Wait for every process."""
    if world().size > 1:
        dist.barrier()
