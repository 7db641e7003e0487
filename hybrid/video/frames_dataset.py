"""Inspection videos as a stream of model-ready frames for the training stack: the sampled frames
of :class:`hybrid.video.sampling.SampledFrames` (the sampler ``hybrid serve`` uses too) as an iterable
dataset of uint8 tensors through the model's eval transform. Memory holds one frame at a time,
whatever the video's length."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import IterableDataset

from hybrid.data.dataset import NO_TARGET
from hybrid.video.sampling import SampledFrames


class VideoFrames(IterableDataset):
    """The sampled frames of one video as model inputs: items ``{"image": uint8 [C, H, W],
    "target": -1, "index": k}`` with ``image`` through ``transform`` (the model's eval
    transform). While iterating it records each sample's ``times`` (seconds) and source
    ``frame_indices``, and a ``problem`` line when the video breaks off early (see
    :class:`~hybrid.video.sampling.SampledFrames`). Iterate it in the main process (the decoder has its
    own threads)."""

    def __init__(self, path: Path, fps: float, transform, in_channels: int = 3):
        super().__init__()
        self.sampled = SampledFrames(Path(path), fps, in_channels)
        self.transform = transform
        self.path, self.fps, self.info, self.name = (
            self.sampled.path,
            self.sampled.fps,
            self.sampled.info,
            self.sampled.name,
        )

    times = property(lambda self: self.sampled.times)
    frame_indices = property(lambda self: self.sampled.frame_indices)
    problem = property(lambda self: self.sampled.problem)

    def __len__(self) -> int:
        """The expected number of samples (fewer when the video breaks off)."""
        return len(self.sampled)

    def frames(self):
        """``(source frame index, time_s, pixels H x W x C uint8)`` for each sample, in time order."""
        return self.sampled.frames()

    def __iter__(self) -> Iterator[dict]:
        for k, (_, _, pixels) in enumerate(self.sampled.frames()):
            image = torch.from_numpy(pixels)
            image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
            yield {"image": self.transform(image), "target": NO_TARGET, "index": k}
