"""This process's place among the processes of a job, and the collectives every layer may need.

Every helper also works in a plain single-process run (world size 1, no process group), so callers
need no branches. Starting and leaving the process group is the engine's business
(:mod:`hybrid.engine.distributed`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_initialized() -> bool:
    """Whether a process group is up."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes in the job (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_rank_zero() -> bool:
    """Whether this process writes files, logs and talks to the tracker."""
    return rank() == 0


def rank_zero_only(function: Callable[..., T]) -> Callable[..., T | None]:
    """Run ``function`` on rank 0 only (the others get ``None``): for files one process writes."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        return function(*args, **kwargs) if is_rank_zero() else None

    return wrapped


def barrier() -> None:
    """Wait until every process gets here (a no-op without a process group)."""
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` without a process group)."""
    if not is_initialized():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def _collective_device() -> str:
    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank, so every rank takes the same branch (a stop, an error)."""
    if not is_initialized():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks."""
    if not is_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def rank_zero_first(action: Callable[[], T]) -> T:
    """``action()`` on every rank, rank 0 first: e.g. only rank 0 generates a dataset, the others
    then find it ready."""
    if not is_rank_zero():
        barrier()
    result = action()
    if is_rank_zero():
        barrier()
    return result
