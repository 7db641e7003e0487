"""Distributed data parallel: the process group from ``torchrun``'s environment, the DDP wrapper's
buffer sync, and the Hydra settings that keep non-zero ranks from creating their own run dir.

Rank and world-size helpers and the collectives live one layer down, in :mod:`hybrid.util.ranks`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from hybrid.errors import ConfigError
from hybrid.util import ranks

log = logging.getLogger(__name__)

STRATEGIES = ("single", "ddp")
BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``);
    ``backend`` is set once it joined a process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether this process trains in a process group (DDP), even one of a single process."""
        return self.backend is not None


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (or another launcher setting its variables) started this process."""
    return "WORLD_SIZE" in os.environ


def env_info() -> DistInfo:
    """The rank and world size ``torchrun`` put in the environment (single process without it)."""
    return DistInfo(
        int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    )


def check_strategy(strategy: str) -> str:
    """``trainer.strategy``: one of :data:`STRATEGIES`."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"trainer.strategy={strategy!r}; choose one of {list(STRATEGIES)}")
    return strategy


def check_backend(backend: str) -> str:
    """``trainer.backend``: one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ConfigError(f"trainer.backend={backend!r}; choose one of {list(BACKENDS)}")
    return backend


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto``: NCCL for CUDA devices, gloo for CPU."""
    if check_backend(backend) == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return backend


def init_distributed(strategy: str, backend: str, device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when ``trainer.strategy=ddp``; returns this process's place.

    Without ``torchrun`` (no ``WORLD_SIZE``) a ``ddp`` run trains in this one process; under
    ``torchrun`` it joins the group even alone (``--nproc_per_node=1``), so DDP, SyncBatchNorm and
    the backend run as they will with more processes.
    """
    check_strategy(strategy)
    if strategy != "ddp" or not launched_by_torchrun():
        if strategy == "ddp":
            log.warning(
                "trainer.strategy=ddp without torchrun: training in one process (launch it with torchrun: docs/training.md)"
            )
        return DistInfo()
    info = env_info()
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    chosen = resolve_backend(backend, device)
    if not ranks.is_initialized():
        dist.init_process_group(backend=chosen, init_method="env://")
    return DistInfo(info.rank, info.local_rank, info.world_size, chosen)


def cleanup() -> None:
    """Leave the process group (a no-op without one)."""
    if ranks.is_initialized():
        dist.destroy_process_group()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank.

    DDP broadcasts them at the start of each training forward, so after the last step every rank
    holds statistics updated by its own last batch; evaluation must see one model.
    """
    if not ranks.is_initialized():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def worker_hydra_overrides(info: DistInfo | None = None) -> list[str]:
    """Hydra overrides for non-zero ranks: no run dir of their own (its timestamp may differ from
    rank 0's by a second), no ``.hydra/`` copy and no log file. Rank 0's run dir is broadcast later."""
    info = info or env_info()
    if info.rank == 0:
        return []
    return ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]
