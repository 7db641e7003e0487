"""Distance along the pipe at every sampled frame: from counter readings (cleaned), the crawler's
telemetry, or a constant speed.

Cleaning counter readings: a reading is kept when it belongs to the longest chain of readings in
which every step is one a crawler can make (at most ``max_speed_m_s`` times the time between them,
plus the counter's own resolution), so a misread digit (12.34 read as 72.34) is rejected while a
crawler backing up to look again is kept as it is, not smoothed away. Samples between kept
readings are interpolated in time; samples before the first or after the last kept reading have
no distance (nothing is extrapolated).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.errors import DataError

# How far back (in readings) the chain looks for a reading consistent with the next: a run of
# misreadings longer than this splits the chain.
CHAIN_LOOKBACK = 40
# A counter shows centimetres: two readings may differ by this much more than the crawler moved.
COUNTER_RESOLUTION_M = 0.02
# distance_source values in frames.csv.
READ, INTERPOLATED, TELEMETRY, SPEED = "counter", "interpolated", "telemetry", "speed"


@dataclass
class Distances:
    """Per sample (in time order): ``metres`` (NaN: unknown) and ``sources`` (how each was found,
    ``""`` when unknown); ``rejected``: counter readings dropped by the cleaning; ``unread``:
    samples whose counter gave no reading."""

    times: np.ndarray
    metres: np.ndarray
    sources: list[str]
    rejected: int = 0
    unread: int = 0

    def at(self, time_s: float) -> float:
        """The distance at ``time_s``, interpolated between the known samples around it (NaN outside)."""
        known = ~np.isnan(self.metres)
        if not known.any():
            return math.nan
        times, metres = self.times[known], self.metres[known]
        if time_s < times[0] - 1e-9 or time_s > times[-1] + 1e-9:
            return math.nan
        return float(np.interp(time_s, times, metres))

    def time_at(self, metre: float, after_s: float = 0.0) -> float:
        """The first sample time at or after ``after_s`` whose distance is nearest ``metre``."""
        known = ~np.isnan(self.metres) & (self.times >= after_s - 1e-9)
        if not known.any():
            return math.nan
        index = np.flatnonzero(known)[np.argmin(np.abs(self.metres[known] - metre))]
        return float(self.times[index])

    @property
    def known(self) -> int:
        """How many samples have a distance."""
        return int((~np.isnan(self.metres)).sum())


class ReadingChain:
    """Counter readings as they come (``add``), kept as the longest chain of readings whose every
    step a crawler at ``max_speed_m_s`` can make; :meth:`distances` cleans and interpolates them at
    every sample time. Each reading is linked once, to the best of the :data:`CHAIN_LOOKBACK`
    readings before it, so a live survey's cost stays flat however long the robot drives."""

    def __init__(self, max_speed_m_s: float):
        self.max_speed_m_s = max_speed_m_s
        self.times: list[float] = []  # every sample's
        self.raw: list[float] = []  # every sample's reading (NaN: none)
        self.read: list[int] = []  # the samples with a reading
        self.length: list[int] = []  # per reading: the longest chain ending there
        self.previous: list[int] = []  # per reading: the reading before it in that chain (-1: none)

    def add(self, time_s: float, reading: float | None) -> None:
        """One sample's reading (``None``: nothing readable)."""
        self.times.append(float(time_s))
        self.raw.append(math.nan if reading is None else float(reading))
        if reading is None:
            return
        best, before = 1, -1
        for k in range(max(0, len(self.read) - CHAIN_LOOKBACK), len(self.read)):
            sample = self.read[k]
            reach = self.max_speed_m_s * (time_s - self.times[sample]) + COUNTER_RESOLUTION_M
            if abs(reading - self.raw[sample]) <= reach and self.length[k] + 1 > best:
                best, before = self.length[k] + 1, k
        self.read.append(len(self.times) - 1)
        self.length.append(best)
        self.previous.append(before)

    def chain(self) -> list[int]:
        """The samples of the longest chain (on a tie, the one ending latest), in time order."""
        if not self.read:
            return []
        top = max(self.length)
        k = len(self.length) - 1 - self.length[::-1].index(top)
        kept = []
        while k >= 0:
            kept.append(self.read[k])
            k = self.previous[k]
        return kept[::-1]

    def distances(self) -> Distances:
        """Every sample's distance: the chain's readings, interpolated between them."""
        times, raw = np.asarray(self.times, float), np.asarray(self.raw, float)
        kept = np.asarray(self.chain(), int)
        metres, sources = np.full(len(times), math.nan), [""] * len(times)
        if len(kept):
            inside = (times >= times[kept[0]]) & (times <= times[kept[-1]])
            metres[inside] = np.interp(times[inside], times[kept], raw[kept])
            for i in np.flatnonzero(inside):
                sources[i] = INTERPOLATED
            metres[kept] = raw[kept]
            for i in kept:
                sources[i] = READ
        return Distances(
            times, metres, sources, rejected=len(self.read) - len(kept), unread=len(times) - len(self.read)
        )


def clean_readings(times: Sequence[float], readings: Sequence[float | None], max_speed_m_s: float) -> Distances:
    """Counter readings (``None``: nothing readable) cleaned and interpolated at every sample time."""
    chain = ReadingChain(max_speed_m_s)
    for time_s, reading in zip(times, readings, strict=True):
        chain.add(time_s, None if reading is None or (isinstance(reading, float) and math.isnan(reading)) else reading)
    return chain.distances()


def read_telemetry(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A crawler's telemetry CSV (``time_s,distance_m``, a header row, times increasing): its two
    columns; a bad row is named in one line."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"--telemetry {path}: cannot be read ({err.strerror or err})") from err
    times, metres = [], []
    rows = csv.DictReader(text.splitlines())
    if rows.fieldnames is None or not {"time_s", "distance_m"} <= set(rows.fieldnames):
        raise DataError(f"--telemetry {path}: the header must name time_s and distance_m (it has {rows.fieldnames})")
    for line, row in enumerate(rows, start=2):
        try:
            time_s, metre = float(row["time_s"]), float(row["distance_m"])
        except (TypeError, ValueError):
            raise DataError(
                f"{path}, row {line}: time_s={row['time_s']!r}, distance_m={row['distance_m']!r} are not numbers"
            ) from None
        if not (math.isfinite(time_s) and math.isfinite(metre)):
            raise DataError(f"{path}, row {line}: time_s and distance_m must be finite")
        if times and time_s <= times[-1]:
            raise DataError(f"{path}, row {line}: time_s={time_s} does not follow {times[-1]} (times must increase)")
        times.append(time_s)
        metres.append(metre)
    if len(times) < 2:
        raise DataError(f"--telemetry {path}: needs at least two rows of time_s,distance_m")
    return np.array(times), np.array(metres)


def from_telemetry(times: Sequence[float], path: str | Path) -> Distances:
    """The telemetry's distance at every sample time (interpolated; none outside its time span)."""
    times = np.asarray(times, float)
    known_t, known_m = read_telemetry(path)
    inside = (times >= known_t[0]) & (times <= known_t[-1])
    metres = np.where(inside, np.interp(times, known_t, known_m), math.nan)
    return Distances(times, metres, [TELEMETRY if i else "" for i in inside])


def from_speed(times: Sequence[float], speed_m_s: float, start_m: float = 0.0) -> Distances:
    """A crawler at a constant ``speed_m_s`` from ``start_m`` at time 0."""
    if not speed_m_s > 0:
        raise DataError(f"--speed {speed_m_s}: must be > 0 metres per second")
    times = np.asarray(times, float)
    return Distances(times, start_m + speed_m_s * times, [SPEED] * len(times))
