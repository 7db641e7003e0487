"""Which samples each process reads: a seeded shuffle for training, shards for evaluation."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from hybrid.errors import ConfigError
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


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: well-mixed 64-bit outputs of consecutive 64-bit inputs (uint64, wrapping)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_seeds(seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
    """The seeds of training samples' augmentation: a function of ``(seed, epoch, index)`` only, so
    neither the loader workers nor an interruption change what a sample looks like. Vectorized: a
    whole epoch's seeds cost microseconds in the main process, which feeds the workers."""
    with np.errstate(over="ignore"):
        base = _splitmix64(_splitmix64(np.array([seed], np.uint64)) ^ np.uint64(epoch))
        mixed = _splitmix64(base + np.asarray(indices, np.uint64))
    return mixed >> np.uint64(1)  # 63 bits: a valid torch.manual_seed everywhere


# data.sampler: random (each image once per epoch, shuffled) | balanced (drawn with replacement,
# each class equally often in expectation)
SAMPLERS = ("random", "balanced")
ITERATION_BLOCK = 4096  # training indices turned into Python ints at a time


def check_sampler(name: str) -> str:
    """``data.sampler``: one of :data:`SAMPLERS`."""
    if name not in SAMPLERS:
        raise ConfigError(f"data.sampler={name!r}; choose one of {list(SAMPLERS)}")
    return name


def balanced_weights(targets: np.ndarray) -> np.ndarray:
    """How often each training sample is drawn so every class is seen equally often: one over its
    class's count (single-label: class indices); multi-label (0/1 rows): the mean of one over the
    count of each of its labels, an image without one counting as the class "none"."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        counts = np.bincount(targets)
        return 1.0 / counts[targets]
    present = targets >= 0.5
    none = ~present.any(axis=1)
    inverse = 1.0 / np.maximum(present.sum(axis=0), 1)
    weights = (present * inverse).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    weights[none] = 1.0 / max(int(none.sum()), 1)
    return weights


class TrainingSampler(Sampler[tuple[int, int]]):
    """The training order: a shuffle that depends only on ``(seed, epoch)``, split over DDP ranks
    (as :class:`~torch.utils.data.DistributedSampler` splits it), yielding ``(index, seed of the sample)`` pairs
    (:func:`sample_seeds`). With ``weights`` (``data.sampler=balanced``) an epoch draws as many
    samples with replacement, in proportion to them, again from ``(seed, epoch)`` only, every
    ``world_size``-th draw to a rank. :meth:`skip_first` starts the next epoch part-way, for a run
    resumed after an interruption: the remaining batches come in the same order, with the same
    randomness."""

    def __init__(self, dataset: Dataset, *, seed: int, rank: int, world_size: int, weights: np.ndarray | None = None):
        self.length = len(dataset)
        self.per_rank = math.ceil(self.length / world_size)  # DistributedSampler's share, padded
        self.weights = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self.rank, self.world_size = rank, world_size
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration draws its order and randomness for."""
        self.epoch = epoch

    def skip_first(self, count: int) -> None:
        """Leave out the first ``count`` samples of the next epoch (those already trained on)."""
        self.skip = count

    def _epoch_order(self) -> np.ndarray:
        """This rank's indices for the epoch: :class:`~torch.utils.data.DistributedSampler`'s
        shuffle (seeded ``seed + epoch``, padded by wrapping round, every ``world_size``-th to a
        rank), kept as one array: a list of Python ints per epoch would cost ~70 MB at Sewer-ML's
        size."""
        total = self.per_rank * self.world_size
        if self.weights is None:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).numpy()
            order = np.resize(order, total)  # repeats from the start: the padding
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.choice(len(self.weights), size=total, p=self.weights)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0
        indices = self._epoch_order()[skip:]
        seeds = sample_seeds(self.seed, self.epoch, indices)
        for start in range(0, len(indices), ITERATION_BLOCK):  # Python ints made a block at a time
            block = slice(start, start + ITERATION_BLOCK)
            yield from zip(indices[block].tolist(), seeds[block].tolist(), strict=True)

    def __len__(self) -> int:
        return self.per_rank - self.skip


def split_sampler(dataset: Dataset, *, train: bool, seed: int, sampler: str = "random") -> Sampler | None:
    """Which samples this process reads. Training: a :class:`TrainingSampler` (``sampler=balanced``:
    weighted by :func:`balanced_weights` of the dataset's ``targets``). Evaluation under DDP: a
    :class:`ShardSampler` (each sample once); in a single process ``None`` (in order)."""
    rank, world = ranks.rank(), ranks.world_size()
    if train:
        weights = balanced_weights(dataset.targets) if check_sampler(sampler) == "balanced" else None
        return TrainingSampler(dataset, seed=seed, rank=rank, world_size=world, weights=weights)
    return ShardSampler(len(dataset), rank, world) if world > 1 else None
