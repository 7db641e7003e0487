"""Clock positions: where around the pipe something is, in hours as the camera looks down it
(12 the crown, 3 the right wall, 6 the invert, 9 the left wall; EN 13508-2 and PACP both use the
12-hour clock).

Two uses: the synthetic videos record each defect's clock position from where it was painted
(:func:`mask_clock`), and ``bench/survey_clock.py`` measures whether the model's attention over
its patch grid (:func:`attention_clock`) finds it. A survey fills ``clock_from`` / ``clock_to``
only where that measurement says it works (docs/survey.md, "Clock position"): today it does not.
"""

from __future__ import annotations

import math

import numpy as np

# A centroid this close to the image centre (as a share of the half-diagonal) has no direction.
MIN_OFFSET = 0.05


def clock_of(dx: float, dy: float) -> int:
    """The clock hour (1-12) of the direction ``(dx, dy)`` from the centre, screen y pointing down."""
    angle = math.degrees(math.atan2(dx, -dy)) % 360  # 0 at the top, clockwise
    hour = round(angle / 30) % 12
    return 12 if hour == 0 else hour


def hours_apart(a: int, b: int) -> int:
    """How many hours apart two clock positions are, the short way round (0-6)."""
    gap = abs(a - b) % 12
    return min(gap, 12 - gap)


def weighted_clock(weights: np.ndarray) -> int | None:
    """The clock hour of the centroid of ``weights`` (an ``H x W`` map, non-negative) relative to
    the map's centre; None when it is empty or its centroid is too near the centre."""
    weights = np.clip(np.asarray(weights, np.float64), 0, None)
    total = weights.sum()
    if total <= 0:
        return None
    height, width = weights.shape
    ys, xs = np.mgrid[0:height, 0:width]
    dx = ((xs + 0.5) * weights).sum() / total - width / 2
    dy = ((ys + 0.5) * weights).sum() / total - height / 2
    if math.hypot(dx / width, dy / height) < MIN_OFFSET:
        return None
    return clock_of(dx / width, dy / height)


def mask_clock(mask: np.ndarray) -> int | None:
    """The clock position of what ``mask`` (``H x W``, where a defect was painted) covers."""
    return weighted_clock(np.asarray(mask, np.float64))


def attention_clock(grid: np.ndarray) -> int | None:
    """The clock position a model's attention grid points at: the centroid of the attention above
    its mean (uniform attention points nowhere)."""
    grid = np.asarray(grid, np.float64)
    return weighted_clock(grid - grid.mean())
