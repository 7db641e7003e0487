"""Distributed data parallel helpers: process group from ``torchrun``'s environment, rank checks,
gathering, and the Hydra settings that keep non-zero ranks from creating their own run dir.

Every helper also works in a plain single-process run (world size 1), so callers need no branches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from hybrid.errors import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("single", "ddp")
BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains together."""
        return self.world_size > 1


def env_info() -> DistInfo:
    """The rank and world size ``torchrun`` put in the environment (single process without it)."""
    return DistInfo(
        int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    )


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


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto``: NCCL for CUDA devices, gloo for CPU."""
    if backend not in BACKENDS:
        raise ConfigError(f"trainer.backend={backend!r}; choose one of {list(BACKENDS)}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return backend


def init_distributed(strategy: str, backend: str, device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when ``trainer.strategy=ddp``; returns this process's place.

    Without ``torchrun`` (no ``WORLD_SIZE``) a ``ddp`` run trains in this one process.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"trainer.strategy={strategy!r}; choose one of {list(STRATEGIES)}")
    info = env_info()
    if strategy != "ddp" or not info.enabled:
        if strategy == "ddp":
            log.warning("trainer.strategy=ddp without torchrun: training in one process (see README)")
        return DistInfo()
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not is_initialized():
        dist.init_process_group(backend=resolve_backend(backend, device), init_method="env://")
    return info


def cleanup() -> None:
    """Leave the process group (a no-op without one)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (a no-op without a process group)."""
    if is_initialized():
        dist.barrier()


def broadcast_object(obj):
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


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank, so every rank takes the same branch (a stop, an error)."""
    if not is_initialized():
        return bool(flag)
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1.0 if flag else 0.0], device=backend_device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks."""
    if not is_initialized():
        return list(values)
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    DDP broadcasts them at the start of each training forward, so after the last step every rank
    holds statistics updated by its own last batch; evaluation must see one model.
    """
    if not is_initialized():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``w`` takes indices ``r, r + w, ...``: every sample exactly once, no padding
    (unlike :class:`~torch.utils.data.DistributedSampler`), so gathered metrics count each image once."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def worker_hydra_overrides(info: DistInfo | None = None) -> list[str]:
    """Hydra overrides for non-zero ranks: no run dir of their own (its timestamp may differ from
    rank 0's by a second), no ``.hydra/`` copy and no log file. Rank 0's run dir is broadcast later."""
    info = info or env_info()
    if info.rank == 0:
        return []
    return ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]
