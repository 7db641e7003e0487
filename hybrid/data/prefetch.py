"""Batches prepared ahead, in a background thread, so the GPU never waits for the next one.

A training step ends by reading its loss (``loss.item()``: the NaN check), which waits for the
GPU; without prefetching, the next batch's decode, copy and normalization only start then, and the
GPU idles meanwhile. Here a thread prepares the next batches on its own CUDA stream while the step
runs (the waits release the GIL), in the spirit of timm's ``PrefetchLoader``. Used on CUDA only: on
the CPU the model's own random draws (dropout) would interleave with the batch preparation's.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import torch

# Batches prepared ahead of the one in use: enough to hide one slow batch, little memory.
DEPTH = 2
_END = object()


def prefetched(batches: Iterable[dict], ready: Callable[[dict], dict], device: torch.device) -> Iterator[dict]:
    """``ready(batch)`` for every batch, computed ahead in a background thread; on CUDA on a side
    stream that the consumer's stream waits for. Errors surface in the consumer, at the batch where
    they happened; closing the iterator early stops the thread."""
    device = torch.device(device)
    stream = torch.cuda.Stream(device) if device.type == "cuda" else None
    ahead: queue.Queue = queue.Queue(maxsize=DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for batch in batches:
                    if stop.is_set():
                        return
                    batch = ready(batch)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    ahead.put((batch, event))
            ahead.put(_END)
        except BaseException as err:  # handed to the consumer, raised there
            ahead.put(err)

    thread = threading.Thread(target=produce, name="hybrid-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            batch, event = item
            if event is not None:
                consumer = torch.cuda.current_stream(device)
                consumer.wait_event(event)
                for key in ("image", "target"):
                    if key in batch:  # memory made on the side stream, used on this one
                        batch[key].record_stream(consumer)
            yield batch
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for room
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.05)
        thread.join()
