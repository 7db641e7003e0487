"""The distance counter burned into a CCTV crawler's video ("12.34 m"), read by OCR.

RapidOCR (PaddleOCR's PP-OCR models on ONNX Runtime, the runtime hybrid serves with; the models
ship inside its wheel, so nothing is downloaded at run time) reads the text. The counter is found
once: in the first sampled frames, the whole frame is searched (text detection, then recognition)
for text that reads as a distance, and its box, widened for longer numbers, is kept; after that
only the box is read (recognition alone, about 15 ms a frame on one CPU core against 0.6 s for a
whole 1280x720 frame). ``--counter-box x0,y0,x1,y1`` gives the box and skips the search.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from hybrid.errors import DataError

# A distance as counters print it: 12.34m, 12.3 m, 0012.34, 40.5 ft, 40.5' (feet converted to metres).
# A number followed by more digits or by another ".12" (a date: 07.12.2026) is not a distance.
DISTANCE_PATTERN = re.compile(r"(?<![\d.,])(-?\d{1,5}[.,]\d{1,3})(?![\d]|[.,]\d)\s*(m|ft|')?", re.IGNORECASE)
FEET = 0.3048
# The search: this many sampled frames are searched at most before giving up.
SEARCH_FRAMES = 8
# Recognition below this confidence is no reading.
MIN_CONFIDENCE = 0.6
# The found box is widened by this many text heights left and right (a counter grows a digit).
WIDEN_HEIGHTS = 1.0
# A crop with fewer pixels than this changed by more than UNCHANGED_LEVEL (of 255) since the last
# one read is the same counter (a crawler standing still): its reading is kept, not read again.
UNCHANGED_PIXELS, UNCHANGED_LEVEL = 4, 64
# RapidOCR's settings: quiet; no orientation model (a counter is upright); one thread per model,
# so its ONNX Runtime sessions have no thread pool spinning beside the defect model's.
OCR_SETTINGS = {
    "Global.log_level": "critical",
    "Global.use_cls": False,
    # the search scales a frame's longer side to 960 px (a 720p frame is not enlarged to 736 px high)
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
}


def parse_distance(text: str) -> float | None:
    """The distance in metres that ``text`` shows (the first number with a decimal part; ``ft`` or
    ``'`` means feet), or None."""
    found = DISTANCE_PATTERN.search(text.replace(" ,", ",").replace("O", "0"))
    if found is None:
        return None
    value = float(found.group(1).replace(",", "."))
    unit = (found.group(2) or "m").lower()
    return value * FEET if unit in ("ft", "'") else value


def text_bounds(corners: np.ndarray) -> tuple[int, int, int, int]:
    """A detected text's four corners as ``x0, y0, x1, y1`` pixels."""
    xs, ys = corners[:, 0], corners[:, 1]
    return int(max(xs.min(), 0)), int(max(ys.min(), 0)), int(np.ceil(xs.max())), int(np.ceil(ys.max()))


def blank_text(pixels: np.ndarray, boxes) -> np.ndarray:
    """``pixels`` with each box (text burned into the video) filled with the frame's median colour:
    what a model looking for defects should not look at."""
    if not boxes:
        return pixels
    out = pixels.copy()
    fill = np.median(pixels.reshape(-1, pixels.shape[-1]) if pixels.ndim == 3 else pixels.ravel(), axis=0)
    for x0, y0, x1, y1 in boxes:
        out[y0:y1, x0:x1] = fill
    return out


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``--counter-box x0,y0,x1,y1`` (pixels of the video frame) as four integers."""
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise DataError(f"--counter-box {text}: give four pixel numbers x0,y0,x1,y1") from None
    if x1 <= x0 or y1 <= y0 or min(x0, y0) < 0:
        raise DataError(f"--counter-box {text}: x1 must exceed x0 and y1 y0, all >= 0")
    return x0, y0, x1, y1


@dataclass
class Reading:
    """One frame's counter: the text read, the distance in metres (None: unreadable)."""

    text: str
    metres: float | None


class CounterReader:
    """Reads the counter of successive frames of one video: ``read(pixels)`` (``H x W x 3`` RGB).
    ``box`` None: found in the first frames; when :data:`SEARCH_FRAMES` frames pass without one,
    :class:`DataError` says which option to use instead."""

    def __init__(self, box: tuple[int, int, int, int] | None = None, source: str = "the video"):
        self.box, self.source, self.searched = box, source, 0
        self._engine = None
        self.text_box: tuple[int, int, int, int] | None = None  # the text itself, inside ``box``
        self.text_boxes: list[tuple[int, int, int, int]] = []  # every text the search found (the overlay)
        self.last: tuple[np.ndarray, Reading] | None = None  # the last text pixels read, and their reading

    @property
    def engine(self):
        """RapidOCR, loaded at the first frame (on the thread that reads: its models take a second)."""
        if self._engine is None:
            from rapidocr import RapidOCR

            self._engine = RapidOCR(params=OCR_SETTINGS)
        return self._engine

    def _search(self, pixels: np.ndarray) -> tuple[int, int, int, int] | None:
        """The box of the first text in ``pixels`` that reads as a distance, widened (the text's own
        box kept as ``text_box``)."""
        result = self.engine(pixels)
        if result.boxes is None:
            return None
        self.text_boxes = [text_bounds(corners) for corners in result.boxes]
        for corners, text in zip(result.boxes, result.txts, strict=True):
            if parse_distance(text) is None:
                continue
            xs, ys = corners[:, 0], corners[:, 1]
            height = ys.max() - ys.min()
            self.text_box = text_bounds(corners)
            pad = WIDEN_HEIGHTS * height
            frame_h, frame_w = pixels.shape[:2]
            return (
                int(max(xs.min() - pad, 0)), int(max(ys.min() - height * 0.25, 0)),
                int(min(xs.max() + pad, frame_w)), int(min(ys.max() + height * 0.25, frame_h)),
            )  # fmt: skip
        return None

    def texts_in(self, pixels: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Every text box in one frame (a search of its own; the counter's box is left as it is)."""
        result = self.engine(pixels)
        return [] if result.boxes is None else [text_bounds(corners) for corners in result.boxes]

    def read(self, pixels: np.ndarray) -> Reading:
        """The counter in one frame (its text and metres, or None for an unreadable one)."""
        if self.box is None:
            self.searched += 1
            self.box = self._search(pixels)
            if self.box is None:
                if self.searched >= SEARCH_FRAMES:
                    raise DataError(
                        f"{self.source}: no distance counter found in its first {self.searched} sampled frames; "
                        "give its place with --counter-box x0,y0,x1,y1, or the distances with --telemetry CSV "
                        "or --speed M_PER_S"
                    )
                return Reading("", None)
        text = self._text(pixels)
        if self.last is not None and self._unchanged(text):
            return self.last[1]
        read, confident = self._recognize(self._crop(pixels))
        metres = parse_distance(read) if confident else None
        reading = Reading(read, None if metres is None or not math.isfinite(metres) else metres)
        self.last = (text.copy(), reading)
        return reading

    def read_two(self, first: np.ndarray, second: np.ndarray) -> tuple[Reading, Reading]:
        """The counters of two frames with one recognition where it can: their crops side by side
        (the recognizer pads a short line to a fixed width anyway, so two cost what one does),
        split back into two distances; one at a time when that does not give exactly two."""
        if self.box is None:
            return self.read(first), self.read(second)
        texts = [self._text(p) for p in (first, second)]
        if self.last is not None and self._unchanged(texts[0]):
            return self.last[1], self.read(second)
        crops = [self._crop(p) for p in (first, second)]
        gap = np.zeros((crops[0].shape[0], max(crops[0].shape[0] // 2, 4), *crops[0].shape[2:]), np.uint8)
        read, confident = self._recognize(np.concatenate([crops[0], gap, crops[1]], axis=1))
        found = [parse_distance(m.group(0)) for m in DISTANCE_PATTERN.finditer(read)]
        if len(found) != 2 or not confident:
            return self.read(first), self.read(second)
        readings = tuple(Reading(read, metres) for metres in found)
        self.last = (texts[1].copy(), readings[1])
        return readings

    def _crop(self, pixels: np.ndarray) -> np.ndarray:
        """The counter's box of one frame (one line when the box lies outside it)."""
        x0, y0, x1, y1 = self.box
        crop = np.ascontiguousarray(pixels[y0:y1, x0:x1])
        if crop.size == 0:
            raise DataError(f"--counter-box {x0},{y0},{x1},{y1}: outside the {pixels.shape[1]}x{pixels.shape[0]} frame")
        return crop

    def _text(self, pixels: np.ndarray) -> np.ndarray:
        """The counter's text itself in one frame (what :meth:`_unchanged` compares)."""
        x0, y0, x1, y1 = self.text_box or self.box
        return np.ascontiguousarray(pixels[y0:y1, x0:x1])

    def _recognize(self, image: np.ndarray) -> tuple[str, bool]:
        """The text recognized in ``image`` (no detection), and whether every part of it is confident."""
        result = self.engine(image, use_det=False, use_cls=False, use_rec=True)
        scores = result.scores or ()
        return " ".join(result.txts or ()), bool(scores) and min(scores) >= MIN_CONFIDENCE

    def _unchanged(self, text: np.ndarray) -> bool:
        """Whether the counter's text pixels are those last read (up to compression noise): a
        crawler standing still. (A number that grows a digit changes the digits there too.)"""
        last = self.last[0]
        if last.shape != text.shape:
            return False
        changed = np.abs(last.astype(np.int16) - text.astype(np.int16)) > UNCHANGED_LEVEL
        changed = changed.any(axis=-1) if changed.ndim == 3 else changed
        return int(changed.sum()) < UNCHANGED_PIXELS
