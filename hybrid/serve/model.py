"""An exported model as a Python object: :class:`Model` reads the card an ``.onnx`` carries, runs the
file with a runtime and turns image files into class probabilities, with numpy, Pillow and
onnxruntime only."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hybrid.errors import DataError
from hybrid.serve.model_card import ModelCard
from hybrid.serve.model_input import fit, load_image, normalize
from hybrid.serve.runtimes import DEFAULT_RUNTIME, RUNTIMES, check_runtime
from hybrid.serve.schema import BATCH


def probabilities(logits: np.ndarray, *, single_label: bool) -> np.ndarray:
    """Softmax over the classes (single-label tasks) or a sigmoid per class (multi-label)."""
    logits = np.asarray(logits, np.float32)
    if not single_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Model:
    """An exported hybrid model (``python -m hybrid.jobs.export``), ready to predict.

    ``runtime``: :data:`~hybrid.serve.runtimes.DEFAULT_RUNTIME` (``onnxruntime``) or ``openvino``; ``threads``: intra-op threads (``None``: the runtime's choice); ``device`` and
    ``precision`` as the runtime takes them (:mod:`hybrid.serve.runtimes`); ``paced``: one image at
    a time at a camera's pace (a live source), so the runtime's threads sleep between calls.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        runtime: str = DEFAULT_RUNTIME,
        threads: int | None = None,
        device: str = "cpu",
        precision: str | None = None,
        paced: bool = False,
    ):
        self.path = str(Path(path).expanduser())
        name = check_runtime(runtime)
        # a foreign file stops at its card, before a runtime compiles it
        card = None if name == "onnxruntime" else ModelCard.read(self.path)
        self.session = RUNTIMES[name](self.path, device=device, precision=precision, num_threads=threads, paced=paced)
        # read from the session itself: the file is opened once (a cold start on the robot)
        self.card = card or ModelCard.from_metadata(self.session.metadata(), self.path)

    @property
    def class_names(self) -> list[str]:
        """The classes, in the order of the probability columns."""
        return list(self.card.class_names)

    @property
    def single_label(self) -> bool:
        """One class per image (softmax) rather than independent classes (sigmoid)."""
        return self.card.task != "multilabel"

    def load(self, path: str | os.PathLike) -> np.ndarray:
        """One image file as the uint8 ``[C, H, W]`` this model takes (a :class:`DataError` naming
        a file that cannot be read)."""
        try:
            return load_image(str(path), self.card.in_channels, self.card.img_size)
        except OSError as err:
            raise DataError(f"{path}: not a readable image ({err})") from err

    def fit(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded pixels (a video frame's ``[H, W, 3]`` RGB, or ``[H, W]`` grey) as this model's
        uint8 ``[C, H, W]`` input."""
        return fit(pixels, self.card.img_size)

    def predict(self, images: Iterable[str | os.PathLike | np.ndarray], batch_size: int = BATCH) -> np.ndarray:
        """Class probabilities ``[N, classes]`` of image files, or of uint8 ``[C, H, W]`` arrays
        already at the model's size, in batches of ``batch_size``."""
        rows, batch = [], []
        for image in images:
            batch.append(image if isinstance(image, np.ndarray) else self.load(image))
            if len(batch) == batch_size:
                rows.append(self._forward(batch))
                batch = []
        if batch:
            rows.append(self._forward(batch))
        return np.concatenate(rows) if rows else np.zeros((0, len(self.class_names)), np.float32)

    def predict_files(
        self, paths: Sequence[str | os.PathLike], batch_size: int = BATCH, workers: int = 1
    ) -> tuple[list[int], np.ndarray, dict[int, DataError]]:
        """Probabilities of image files, decoded by ``workers`` threads while the runtime predicts
        the batch before (Pillow decodes and onnxruntime runs outside the GIL; the runtime's own
        threads take the cores, so one decoding thread was as fast as two on 2 cores here):
        ``(indices of the files read, probabilities [len(indices), classes], {index: why not})``."""
        kept, rows, failed, batch = [], [], {}, []
        for index, pixels in self._loaded(paths, workers, lookahead=2 * batch_size):
            if isinstance(pixels, DataError):
                failed[index] = pixels
                continue
            kept.append(index)
            batch.append(pixels)
            if len(batch) == batch_size:
                rows.append(self._forward(batch))
                batch = []
        if batch:
            rows.append(self._forward(batch))
        probs = np.concatenate(rows) if rows else np.zeros((0, len(self.class_names)), np.float32)
        return kept, probs, failed

    def _loaded(self, paths, workers: int, lookahead: int) -> Iterator[tuple[int, np.ndarray | DataError]]:
        """``(index, pixels or the error)`` of each file in order, at most ``lookahead`` ahead."""

        def load(path) -> np.ndarray | DataError:
            try:
                return self.load(path)
            except DataError as err:
                return err

        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque = deque()
            for index, path in enumerate(paths):
                pending.append((index, pool.submit(load, path)))
                if len(pending) > lookahead:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()

    def attention_grids(self, images: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """The decoder's mean attention over the patch grid (``side x side``) for uint8 ``[C, H, W]``
        inputs (:meth:`fit`); None for a file without that output (a baseline, an older export)."""
        if not images:
            return []
        weights = self.session.attention(normalize(list(images), self.card.mean, self.card.std))
        if weights is None:
            return None
        side = round(weights.shape[1] ** 0.5)
        return [np.asarray(w, np.float32).reshape(side, side) for w in weights]

    def _forward(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        shape = (self.card.in_channels, self.card.img_size, self.card.img_size)
        wrong = next((tuple(b.shape) for b in batch if tuple(b.shape) != shape), None)
        if wrong is not None:
            raise DataError(f"{self.path} takes images of {'x'.join(map(str, shape))}, got {'x'.join(map(str, wrong))}")
        logits = self.session(normalize(batch, self.card.mean, self.card.std))
        return probabilities(logits, single_label=self.single_label)
