"""The loader the engine iterates: batches on the model's device, ready for the model.

Modelled on timm's ``PrefetchLoader``: the data package owns everything between the files and the
model input (decode, resize, augmentation, the move to the device, uint8 -> float, normalization,
colour jitter, memory format), so the training and evaluation loops never see mean / std.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, default_collate

from hybrid.data.batch import BatchPreparer
from hybrid.data.decode import DeviceDecoder
from hybrid.data.prefetch import prefetched
from hybrid.data.samplers import ShardSampler


def collate(items: list[dict]) -> dict:
    """Stack good samples; names of unreadable ones go to ``batch["skipped"]``. Samples left
    encoded for the device (``data.decode=cuda``) come as the lists ``encoded`` / ``decoded`` (one
    of the two set per sample) instead of ``image``."""
    good = [it for it in items if "bad" not in it]
    batch = {"skipped": [it["bad"] for it in items if "bad" in it]}
    if good:
        if any("encoded" in it for it in good):
            batch["encoded"] = [it.get("encoded") for it in good]
            batch["decoded"] = [it.get("image") for it in good]
        else:
            # default_collate stacks into shared memory inside a worker: no extra copy on the way out
            batch["image"] = default_collate([it["image"] for it in good])
        batch["target"] = default_collate([it["target"] for it in good])
        batch["index"] = torch.tensor([it["index"] for it in good])
    return batch


class DeviceLoader:
    """Wraps a :class:`~torch.utils.data.DataLoader` of uint8 batches (see :func:`collate`).

    Each batch comes out with ``image`` on ``device`` as normalized float in the requested memory
    format (colour-jittered when ``train``) and ``target`` on ``device``; ``index`` (dataset rows)
    and ``skipped`` (names of unreadable images) stay on the CPU. A batch of only unreadable images
    has no ``image`` key. With a ``decoder`` (``data.decode=cuda``) JPEG bytes are decoded, resized
    and augmented on the device first. ``prefetch`` (default: on CUDA) prepares the next batches in
    a background thread while the model works (:mod:`hybrid.data.prefetch`).
    """

    def __init__(
        self,
        loader: DataLoader,
        preparer: BatchPreparer,
        device: torch.device,
        *,
        channels_last: bool = False,
        train: bool = False,
        decoder: DeviceDecoder | None = None,
        prefetch: bool | None = None,
    ):
        self.loader = loader
        self.preparer = preparer
        self.decoder = decoder
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.train = train
        self.prefetch = self.device.type == "cuda" if prefetch is None else prefetch

    def ready(self, batch: dict) -> dict:
        """``batch`` (from :func:`collate`) moved to the device and prepared for the model."""
        if self.decoder is not None:
            self._decode(batch)
        if "image" in batch:
            batch["image"] = self.preparer(
                batch["image"], self.device, channels_last=self.channels_last, train=self.train
            )
            batch["target"] = batch["target"].to(self.device, non_blocking=True)
        return batch

    def _decode(self, batch: dict) -> None:
        """Decode the batch's JPEG bytes and augment it on the device; undecodable ones join ``skipped``."""
        if "image" in batch:  # nothing left encoded (e.g. an npy cache): moved and augmented only
            batch["image"] = self.decoder.finish(batch["image"])
            return
        if "encoded" not in batch:  # only unreadable images
            return
        images, bad = self.decoder(batch.pop("encoded"), batch.pop("decoded"))
        if bad:
            keep = torch.ones(len(batch["index"]), dtype=torch.bool)
            keep[bad] = False
            batch["skipped"] += [self.dataset.names[int(i)] for i in batch["index"][~keep]]
            batch["target"], batch["index"] = batch["target"][keep], batch["index"][keep]
        if images is None:
            del batch["target"], batch["index"]
        else:
            batch["image"] = images

    def batch_of(self, indices: Sequence[int]) -> dict:
        """A ready batch of the dataset rows ``indices`` (e.g. the images a tracker shows)."""
        return self.ready(collate([self.dataset[int(i)] for i in indices]))

    def __iter__(self) -> Iterator[dict]:
        if self.prefetch:
            yield from prefetched(self.loader, self.ready, self.device)
            return
        for batch in self.loader:
            yield self.ready(batch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        """The wrapped loader's dataset."""
        return self.loader.dataset

    @property
    def sampler(self):
        """The wrapped loader's sampler (the trainer sets its epoch)."""
        return self.loader.sampler

    @property
    def sharded(self) -> bool:
        """Whether this process reads only its share of the samples (evaluation under DDP), so
        predictions must be gathered from every process."""
        return isinstance(self.loader.sampler, ShardSampler)
