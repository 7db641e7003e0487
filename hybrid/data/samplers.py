"""Which samples each process reads: a seeded shuffle for training, shards for evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
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


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one training sample's augmentation: a function of ``(seed, epoch, index)`` only,
    so neither the loader workers nor an interruption change what a sample looks like."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class TrainingSampler(Sampler[tuple[int, int]]):
    """The training order: a shuffle that depends only on ``(seed, epoch)``, split over DDP ranks
    (:class:`~torch.utils.data.DistributedSampler`), yielding ``(index, seed of the sample)`` pairs
    (:func:`sample_seed`). :meth:`skip_first` starts the next epoch part-way, for a run resumed
    after an interruption: the remaining batches come in the same order, with the same randomness."""

    def __init__(self, dataset: Dataset, *, seed: int, rank: int, world_size: int):
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration draws its order and randomness for."""
        self.order.set_epoch(epoch)
        self.epoch = epoch

    def skip_first(self, count: int) -> None:
        """Leave out the first ``count`` samples of the next epoch (those already trained on)."""
        self.skip = count

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0
        for position, index in enumerate(self.order):
            if position >= skip:
                yield index, sample_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return len(self.order) - self.skip


def split_sampler(dataset: Dataset, *, train: bool, seed: int) -> Sampler | None:
    """Which samples this process reads. Training: a :class:`TrainingSampler`. Evaluation under
    DDP: a :class:`ShardSampler` (each sample once); in a single process ``None`` (in order)."""
    rank, world = ranks.rank(), ranks.world_size()
    if train:
        return TrainingSampler(dataset, seed=seed, rank=rank, world_size=world)
    return ShardSampler(len(dataset), rank, world) if world > 1 else None
