"""A draft inspection survey from one video (``hybrid survey MODEL.onnx VIDEO --out DIR``).

The video's sampled frames are scored as ``hybrid serve`` scores them (:func:`score_video`, the
same events), while the distance counter burned into each frame is read (or the distances come
from telemetry or a speed). Events become observations at metres along the pipe, coded in the
chosen standard (:mod:`hybrid.survey`). Written into ``--out``: ``frames.csv`` (with
``distance_m``, ``distance_source``), ``events.csv``, ``events.json``, ``observations.csv`` /
``.json``, ``photos/`` (each observation's frame, named by distance) and ``report.html``.
``infer.py input=VIDEO survey.enabled=true`` writes the same through :func:`write_survey`;
``hybrid serve SOURCE --survey`` keeps a survey of a live source (:mod:`hybrid.serve.live_survey`);
the command line is :mod:`hybrid.jobs.survey`.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybrid.errors import DataError
from hybrid.predictions import FRAMES_FILE, frame_rows, write_frames
from hybrid.serve.model import Model
from hybrid.serve.model_card import CLOCK_SHIP_AT
from hybrid.serve.schema import BATCH, VideoOptions
from hybrid.serve.video_files import Findings, score_video
from hybrid.survey.codes import STANDARDS, CodeMap
from hybrid.survey.counter import CounterReader, blank_text, parse_box
from hybrid.survey.distance import (
    Distances,
    clean_readings,
    from_speed,
    from_telemetry,
    read_telemetry,
)
from hybrid.survey.header import SurveyHeader, survey_header
from hybrid.survey.observations import Observation, observations
from hybrid.survey.page import SurveyPage
from hybrid.survey.schema import DISTANCE_COLUMNS, SurveyOptions
from hybrid.survey.writer import (
    PAGE_PHOTO_WIDTH,
    jpeg,
    photo_name,
    save_photo,
    write_observations,
    write_report,
)
from hybrid.util.clock import attention_clock
from hybrid.video.event_files import write_events
from hybrid.video.events import Event
from hybrid.video.sampling import SampledFrames, read_frame_at


class CounterTrack:
    """The counter readings of one video, frame by frame (``on_frame`` for :func:`score_video`).
    Reading runs on its own thread, beside decoding and the model (ONNX Runtime lets go of the
    GIL), so a survey costs little more wall time than serving; ``readings`` waits for them all.
    The first and the latest frame are kept (the start and finish nodes' photos)."""

    def __init__(self, options: SurveyOptions | None, source: str):
        box = parse_box(options.counter_box) if options and options.counter_box else None
        self.reader = CounterReader(box, source) if options is not None else None
        self.times: list[float] = []
        self.pending: list[Future] = []
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="counter")
        self.ends: dict[str, tuple[float, np.ndarray]] = {}
        self.held: np.ndarray | None = None  # a frame waiting for the next, to be read as a pair

    def __call__(self, time_s: float, pixels: np.ndarray) -> None:
        self.ends.setdefault("first", (time_s, pixels))
        self.ends["last"] = (time_s, pixels)
        self.times.append(time_s)
        if self.reader is None:
            return
        failed = next((f for f in self.pending[-8:] if f.done() and f.exception() is not None), None)
        if failed is not None:  # no counter found: stop before scoring the rest
            self.worker.shutdown(wait=False, cancel_futures=True)
            raise failed.exception()
        if self.reader.box is None or self.held is not None:  # searching, or the second of a pair
            first, self.held = self.held, None
            frames = [pixels] if first is None else [first, pixels]
            self.pending.append(self.worker.submit(self._read, frames))
        else:
            self.held = pixels

    @property
    def text_boxes(self) -> list[tuple[int, int, int, int]]:
        """The text the counter's search found in the video (none without a search)."""
        return self.reader.text_boxes if self.reader else []

    def _read(self, frames: list[np.ndarray]) -> list:
        return [self.reader.read(frames[0])] if len(frames) == 1 else list(self.reader.read_two(*frames))

    @property
    def readings(self) -> list[float | None]:
        """Every frame's reading in metres (None: unreadable), once all are read."""
        if self.held is not None:
            self.pending.append(self.worker.submit(self._read, [self.held]))
            self.held = None
        try:
            return [reading.metres for future in self.pending for reading in future.result()]
        finally:
            self.worker.shutdown(wait=True)


def distances_of(options: SurveyOptions, times, readings: list[float | None] | None) -> Distances:
    """The distance at each sample time, from the source ``options`` name (the counter's:
    ``readings``, one per time)."""
    if options.telemetry:
        return from_telemetry(times, options.telemetry)
    if options.speed:
        return from_speed(times, options.speed, options.start_m)
    return clean_readings(times, readings, options.max_speed_m_s)


def distance_lines(name: str, distances: Distances, source: str) -> list[str]:
    """What the user is told about the distances: samples without one, readings rejected."""
    total = len(distances.times)
    lines = []
    if source == "counter":
        read = total - distances.unread
        lines.append(
            f"{name}: counter read on {read} of {total} samples ({100 * read / max(total, 1):.1f}%); "
            f"{distances.unread} samples had no reading, {distances.rejected} readings rejected as jumps"
        )
    missing = total - distances.known
    if missing:
        lines.append(
            f"{name}: {missing} of {total} samples have no distance (before the first or after the last known one)"
        )
    return lines


@dataclass
class Survey:
    """One survey's parts: the header, the code map and options, and what it found so far."""

    header: SurveyHeader
    codes: CodeMap
    options: SurveyOptions
    model_name: str = ""
    clock: object = None  # pixels -> clock hour or None (the model's attention); None: not estimated
    rows: list[Observation] = field(default_factory=list)
    distances: dict[str, Distances] = field(default_factory=dict)
    photos: dict[str, bytes] = field(default_factory=dict)

    def page(self, rows: list[Observation] | None = None) -> SurveyPage:
        """The report page of what is found so far (``rows``: these observations instead, a live
        folder's earlier runs' too)."""
        facts = [
            ("standard", STANDARDS[self.codes.standard]), ("code map", str(self.codes.path or "built-in (hybrid survey --list-codes)")),
            ("distances from", self.options.distance_source), ("model", self.model_name),
            ("continuous from", f"{self.options.continuous_m:g} m along the pipe"),
            ("clock position", clock_fact(self.clock)),
        ]  # fmt: skip
        return SurveyPage(self.header, self.rows if rows is None else rows, self.distances, self.photos, facts)


def attention_clock_of(model: Model, report=None):
    """``pixels -> clock hour`` from ``model``'s attention grid output, where the model's card says
    it was measured to work (``clock_within_1h`` at least :data:`CLOCK_SHIP_AT`); else None, and
    ``report`` says why."""
    measured = model.card.clock_within_1h
    if not model.session.has_attention:
        why = "this model file has no attention output (a baseline, or exported before it had one)"
    elif measured is None:
        why = "never measured for this model (python bench/survey_clock.py --ckpt ... --stamp MODEL.onnx)"
    elif measured < CLOCK_SHIP_AT:
        why = (
            f"measured within one hour on {100 * measured:.1f}% of synthetic defects, under {100 * CLOCK_SHIP_AT:.0f}%"
        )
    else:
        why = None
    if why is not None:
        if report is not None:
            report(f"clock positions left empty: {why}")
        return None

    def clock(pixels: np.ndarray) -> int | None:
        return attention_clock(model.attention_grids([model.fit(pixels)])[0])

    clock.measured = measured
    return clock


def mark_clock(obs: Observation, pixels: np.ndarray, clock, text_boxes=()) -> None:
    """An observation's clock position from its photo's frame (a point, or a continuous defect's
    start: the peak frame), where the model gives one; the text burned into the video
    (``text_boxes``, found by the counter's search) blanked first, as it draws the attention."""
    if clock is None or obs.continuous.startswith("F") or obs.label in ("start", "finish"):
        return
    hour = clock(blank_text(pixels, list(text_boxes)))
    obs.clock_from = "" if hour is None else str(hour)


def scaled(box: tuple[int, int, int, int], factor: float) -> tuple[int, int, int, int]:
    """A pixel box of a frame, in the frame scaled by ``factor`` (at most 1: never enlarged)."""
    factor = min(factor, 1.0)
    return tuple(round(v * factor) for v in box)


def clock_fact(clock) -> str:
    """How the report says where its clock positions come from."""
    if clock is None:
        return "not estimated: not measured to work for this model (docs/survey.md, Clock position)"
    return (
        f"where the model looks (its attention), within one hour on {100 * clock.measured:.1f}% of synthetic "
        "defects; for the inspector to check"
    )


def make_survey(options: SurveyOptions, given_header: dict, model: Model | None, model_name: str, report) -> Survey:
    """A :class:`Survey` from the options and header flags; bad files stop here, before any work.
    Then whether clock positions come from ``model`` (:func:`attention_clock_of`; a line says why not)."""
    header = survey_header(options.header or None, **given_header)
    codes = CodeMap(options.standard, options.codes or None, warn=report)
    if options.telemetry:
        read_telemetry(options.telemetry)  # a bad row is named before the video is decoded
    clock = attention_clock_of(model, report) if model is not None else None
    return Survey(header, codes, options, model_name, clock)


def photo_frames(video_path: Path, times, in_channels: int = 3) -> dict[float, np.ndarray]:
    """The frames at ``times`` (seconds), re-read from the video (never held during scoring)."""
    return {t: read_frame_at(video_path, t, in_channels, nearby=True) for t in sorted(set(times))}


def write_survey(
    survey: Survey, out: Path, name: str, events: list[Event], distances: Distances, frames: dict[float, np.ndarray],
    video_path: Path | None = None, text_boxes=(),
) -> list[Observation]:  # fmt: skip
    """Observations of one scored video into ``survey``, each with its photo (from ``frames``, by
    time: :func:`photo_frames` of :func:`photo_times`; others re-read from ``video_path``);
    ``observations.*``, ``photos/`` and ``report.html`` written in ``out``."""
    found = observations(
        name, events, distances, survey.codes, section=survey.header.section, continuous_m=survey.options.continuous_m
    )
    taken = set(survey.photos)
    for obs in found:
        pixels = frames.get(obs.photo_s)
        if pixels is None and obs.photo_s is not None and video_path is not None:  # a continuous defect's finish
            pixels = read_frame_at(video_path, obs.photo_s, nearby=True)
        if pixels is None:
            continue
        mark_clock(obs, pixels, survey.clock, text_boxes)
        obs.photo = photo_name(obs, taken)
        save_photo(out, obs.photo, jpeg(pixels))
        survey.photos[obs.photo] = jpeg(pixels, PAGE_PHOTO_WIDTH)
    survey.rows += found
    survey.distances[name] = distances
    write_observations(out, survey.rows)
    write_report(out, survey.page())
    return found


def photo_times(events: list[Event]) -> list[float]:
    """The video times most observations' photos show: each event's peak. (The nodes' frames are
    kept while scoring; a continuous defect's finish is known once distances are.)"""
    return [e.peak_s for e in events]


def frames_with_distances(rows: list[list], distances: Distances) -> list[list]:
    """``frames.csv`` rows of one video (:func:`~hybrid.predictions.frame_rows`) with
    ``distance_m`` and ``distance_source``."""
    metres = ["" if math.isnan(m) else f"{m:.3f}" for m in distances.metres]
    return [[*row, m, source] for row, m, source in zip(rows, metres, distances.sources, strict=True)]


def settle_distances(
    survey: Survey, video: Path, name: str, times, events: list[Event], counter: CounterTrack, report, in_channels: int = 3,
) -> tuple[Distances, dict[float, np.ndarray]]:  # fmt: skip
    """After a video is scored: the distance of every sample (waiting for the counter's last
    readings while the photos' frames are read: they need times, not distances), and those frames."""
    frames = photo_frames(video, photo_times(events), in_channels) | dict(counter.ends.values())
    distances = distances_of(survey.options, times, counter.readings if counter.reader else None)
    for line in distance_lines(name, distances, survey.options.distance_source):
        report(line)
    return distances, frames


def check_distances(video: Path, distances: Distances, counter: CounterTrack) -> None:
    """Stop with one line when no sample has a distance (what was scored is written by then)."""
    if not distances.known and counter.reader is None:
        raise DataError(
            f"{video}: the telemetry covers none of its {len(distances.times)} samples (frames.csv and events.csv "
            "are written); give the crawler's log of this video"
        )
    if not distances.known:
        raise DataError(
            f"{video}: the counter at {counter.reader.box} gave no distance on any of its {len(distances.times)} samples "
            f"(frames.csv and events.csv are written); give its place with --counter-box x0,y0,x1,y1, or the "
            "distances with --telemetry CSV or --speed M_PER_S"
        )


def counter_of(survey: Survey, video: Path) -> CounterTrack:
    """What reads one video's distances as it is scored (the counter, unless distances come from
    telemetry or a speed)."""
    options = survey.options
    return CounterTrack(options if options.distance_source == "counter" else None, str(video))


def survey_video(
    model: Model, video: Path, out: Path, video_options: VideoOptions, survey: Survey, report, batch: int = BATCH
) -> dict:
    """The survey of one video file into ``out``; ``report`` takes each line for the user."""
    frames = SampledFrames(video, video_options.fps, model.card.in_channels)
    counter = counter_of(survey, video)
    scores = score_video(model, frames, batch, on_frame=counter)
    if scores.problem:
        report(f"{video}: {scores.problem}; the frames before it are used")
    findings = Findings(model, video_options)
    events = findings.events(scores.name, scores.times, scores.probs)
    distances, photos = settle_distances(
        survey, video, scores.name, scores.times, events, counter, report, model.card.in_channels
    )
    out.mkdir(parents=True, exist_ok=True)
    rows = frames_with_distances(
        frame_rows(scores.name, scores.frame_indices, scores.times, scores.probs, findings.labels(scores.probs)),
        distances,
    )
    write_frames(out / FRAMES_FILE, model.class_names, rows, DISTANCE_COLUMNS)
    write_events(out, events, [scores.name])
    check_distances(video, distances, counter)
    found = write_survey(survey, out, scores.name, events, distances, photos, video, counter.text_boxes)
    return {"frames": len(scores.times), "events": len(events), "observations": len(found), "seconds": scores.seconds}
