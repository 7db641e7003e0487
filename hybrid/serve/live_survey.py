"""``hybrid serve SOURCE --survey``: a draft survey kept as a live source is served. The counter is
read in the reader thread beside the model's input, recent frames are kept as small JPEGs for the
photos, and each closed event's observations are printed as JSON lines and written with the
report at once (:mod:`hybrid.serve.survey_run` writes the same files for a video file)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import fields
from pathlib import Path

import numpy as np

from hybrid.errors import DataError
from hybrid.serve.model import Model
from hybrid.serve.survey_run import Survey, distances_of, mark_clock, scaled
from hybrid.survey.counter import CounterReader, parse_box
from hybrid.survey.distance import (
    READ,
    SPEED,
    TELEMETRY,
    Distances,
    ReadingChain,
    read_telemetry,
)
from hybrid.survey.observations import Observation, node_rows, observations
from hybrid.survey.writer import (
    PAGE_PHOTO_WIDTH,
    decode_jpeg,
    jpeg,
    photo_name,
    save_photo,
    write_observations,
    write_report,
)
from hybrid.video.events import Event

# A live survey keeps this much of the stream's frames (small JPEGs) for its photos.
LIVE_PHOTO_WINDOW_S = 600.0


class LiveSurvey:
    """A survey kept as a live source is served (``hybrid serve SOURCE --survey``): the counter is
    read in the reader thread beside the model's input (:meth:`prepare`), recent frames are kept as
    small JPEGs for photos, and each closed event becomes observations, printed as JSON lines
    and written with the report at once. Observations of an earlier run of the folder are kept."""

    def __init__(self, model: Model, survey: Survey, out: Path, name: str, emit, report):
        self.model, self.survey, self.out, self.name, self.emit = model, survey, out, name, emit
        options = survey.options
        self.counter = (
            CounterReader(parse_box(options.counter_box) if options.counter_box else None, name)
            if options.distance_source == "counter"
            else None
        )
        self.times: list[float] = []
        self.chain = ReadingChain(options.max_speed_m_s)  # the counter's readings, linked as they come
        self.report = report
        self.frames: deque[tuple[float, bytes]] = deque()
        self.earlier = _earlier_rows(out, report)
        # continuous pairs are numbered across the folder's runs; its start node is written once,
        # at the first known distance (a power cut after it keeps it)
        self.pairs = sum(str(row.get("continuous") or "").startswith("S") for row in self.earlier)
        self.has_start = any(row.get("label") == "start" for row in self.earlier)
        self.track = read_telemetry(survey.options.telemetry) if survey.options.telemetry else None
        self.width = PAGE_PHOTO_WIDTH  # the camera's frame width (the photos are scaled to PAGE_PHOTO_WIDTH)

    def prepare(self, pixels: np.ndarray):
        """The reader thread's work per sample: the model's input, the counter and a small JPEG."""
        self.width = pixels.shape[1]
        reading = None
        if self.counter is not None:
            try:
                reading = self.counter.read(pixels).metres
            except DataError as err:  # no counter: the robot keeps going, its observations without distances
                self.report(f"{err}; the survey goes on without distances")
                self.counter = None
        return self.model.fit(pixels), reading, jpeg(pixels, PAGE_PHOTO_WIDTH)

    def sample(self, time_s: float, reading: float | None, photo: bytes) -> tuple[str, str]:
        """Keep one scored sample; its distance as known now (``frames.csv``'s two columns)."""
        self.times.append(time_s)
        self.chain.add(time_s, reading)
        self.frames.append((time_s, photo))
        while self.frames and self.frames[0][0] < time_s - LIVE_PHOTO_WINDOW_S:
            self.frames.popleft()
        known = self._distance_now(time_s, reading)
        if known[0] and not self.has_start:
            self._start(photo)
        return known

    def _distance_now(self, time_s: float, reading: float | None) -> tuple[str, str]:
        options = self.survey.options
        if self.track is not None:
            inside = self.track[0][0] <= time_s <= self.track[0][-1]
            return (f"{np.interp(time_s, *self.track):.3f}", TELEMETRY) if inside else ("", "")
        if options.speed:
            return f"{options.start_m + options.speed * time_s:.3f}", SPEED
        # the reading as read: the cleaning (and interpolation) needs the readings after it too
        return ("", "") if reading is None else (f"{reading:.3f}", READ)

    def _start(self, photo: bytes) -> None:
        """The section's start node, at the first known distance, written at once."""
        start = node_rows(self.distances(), self.survey.codes, self.survey.header.section, self.name)[0]
        start.photo = photo_name(start, set(self.survey.photos))
        save_photo(self.out, start.photo, photo)
        self.survey.photos[start.photo] = photo
        self.survey.rows.insert(0, start)
        self.has_start = True
        self.write()

    def distances(self) -> Distances:
        """The distances of the samples so far."""
        if self.survey.options.distance_source == "counter":
            return self.chain.distances()
        return distances_of(self.survey.options, self.times, None)

    def _photo(self, time_s: float) -> bytes | None:
        for taken, data in self.frames:
            if taken >= time_s - 1e-6:
                return data
        return None

    def events(self, closed: list[Event]) -> None:
        """Closed events as observations: printed, written, the report rewritten."""
        distances = self.distances()
        found = observations(
            self.name, closed, distances, self.survey.codes, section=self.survey.header.section,
            continuous_m=self.survey.options.continuous_m, with_nodes=False, pairs_before=self.pairs,
        )  # fmt: skip
        self.pairs += sum(obs.continuous.startswith("S") for obs in found)
        taken = set(self.survey.photos) | {row.get("photo", "") for row in self.earlier}
        for obs in found:
            data = self._photo(obs.photo_s) if obs.photo_s is not None else None
            if data is not None:
                boxes = (
                    [scaled(box, PAGE_PHOTO_WIDTH / self.width) for box in self.counter.text_boxes]
                    if self.counter
                    else []
                )
                mark_clock(obs, decode_jpeg(data), self.survey.clock, boxes)
                obs.photo = photo_name(obs, taken)
                save_photo(self.out, obs.photo, data)
                self.survey.photos[obs.photo] = data
            self.emit({"type": "observation", **obs.row()})
        self.survey.rows += found
        self.write(distances)

    def write(self, distances: Distances | None = None, *, final: bool = False) -> None:
        """``observations.*`` and ``report.html`` as they stand; ``final``: with the section's finish
        (this run's last known distance; an earlier run's finish gives way to it)."""
        distances = distances or self.distances()
        self.survey.distances[self.name] = distances
        earlier = [row for row in self.earlier if row.get("label") != "finish"]
        rows = [*map(_observation, earlier), *self.survey.rows]
        if final:
            rows += node_rows(distances, self.survey.codes, self.survey.header.section, self.name)[1:]
        write_observations(self.out, rows)
        write_report(self.out, self.survey.page(rows))


def _earlier_rows(out: Path, report) -> list[dict]:
    from hybrid.survey.writer import read_observations

    try:
        rows = read_observations(out)
    except ValueError as err:
        raise DataError(f"{out}: its observations.json cannot be read ({err}); move it away to start afresh") from None
    if rows:
        report(f"{out}: {len(rows)} observations of earlier runs kept")
    return rows


def _observation(row: dict) -> Observation:
    """An earlier run's row back as an :class:`Observation`."""
    known = {f.name for f in fields(Observation)}
    values = {k: v for k, v in row.items() if k in known}
    values["distance_m"] = math.nan if values.get("distance_m") is None else float(values["distance_m"])
    return Observation(**values)
