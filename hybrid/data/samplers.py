"""Which samples each process reads: a seeded shuffle for training, shards for evaluation."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler

from hybrid.util import ranks


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``w`` takes indices ``r, r + w, ...``: every sample exactly once, no padding
    (unlike :class:`~torch.utils.data.DistributedSampler`), so gathered metrics count each image once."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = range(rank, length, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def split_sampler(dataset: Dataset, *, train: bool, seed: int) -> Sampler | None:
    """Which samples this process reads. Training: a shuffle that depends only on ``(seed, epoch)``
    (the trainer calls ``set_epoch``, so a resumed run sees the same order), split over DDP ranks.
    Evaluation under DDP: a :class:`ShardSampler` (each sample once); in a single process ``None``
    (in order)."""
    rank, world = ranks.rank(), ranks.world_size()
    if train:
        return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return ShardSampler(len(dataset), rank, world) if world > 1 else None
