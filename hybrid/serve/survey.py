"""A draft inspection survey from one video: ``hybrid survey MODEL.onnx VIDEO --out DIR``.

The video's sampled frames are scored as ``hybrid serve`` scores them (:func:`score_video`, the
same events), while the distance counter burned into each frame is read (or the distances come
from telemetry or a speed). Events become observations at metres along the pipe, coded in the
chosen standard (:mod:`hybrid.survey`). Written into ``--out``: ``frames.csv`` (with
``distance_m``, ``distance_source``), ``events.csv``, ``events.json``, ``observations.csv`` /
``.json``, ``photos/`` (each observation's frame, named by distance) and ``report.html``.
``infer.py input=VIDEO survey.enabled=true`` writes the same through :func:`write_survey`, and
``hybrid serve SOURCE --survey`` keeps a survey of a live source (:class:`LiveSurvey`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from hybrid.errors import DataError, HybridError
from hybrid.events import Event, write_events
from hybrid.predictions import FRAMES_FILE, frame_rows, write_frames
from hybrid.serve.model import Model
from hybrid.serve.runtimes import DEFAULT_RUNTIME, RUNTIMES
from hybrid.serve.video import Findings, VideoOptions, score_video
from hybrid.survey.codes import STANDARDS, CodeMap, code_table
from hybrid.survey.counter import CounterReader, blank_text, parse_box
from hybrid.survey.distance import (
    READ,
    SPEED,
    TELEMETRY,
    Distances,
    clean_readings,
    from_speed,
    from_telemetry,
    read_telemetry,
)
from hybrid.survey.header import SurveyHeader, survey_header
from hybrid.survey.observations import Observation, node_rows, observations
from hybrid.survey.options import DISTANCE_COLUMNS, SurveyOptions
from hybrid.survey.page import SurveyPage
from hybrid.survey.writer import (
    PAGE_PHOTO_WIDTH,
    decode_jpeg,
    jpeg,
    photo_name,
    save_photo,
    write_observations,
    write_report,
)
from hybrid.util.cli import add_options, spec_from
from hybrid.util.clock import attention_clock
from hybrid.util.video import SampledFrames, check_fps, read_frame_at

USAGE_ERROR = 2
CLOCK_FROM_ATTENTION = "where the model looks (its attention over the image), for the inspector to check"
CLOCK_NOT_ESTIMATED = "not estimated (hybrid survey --clock: measured below 70% within one hour; docs/survey.md)"
# A live survey keeps this much of the stream's frames (small JPEGs) for its photos.
LIVE_PHOTO_WINDOW_S = 600.0


def print_line(text: str) -> None:
    """A line for the user, on stderr."""
    print(f"hybrid survey: {text}", file=sys.stderr, flush=True)


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

    def page(self) -> SurveyPage:
        """The report page of what is found so far."""
        facts = [
            ("standard", STANDARDS[self.codes.standard]), ("code map", str(self.codes.path or "built-in (hybrid survey --list-codes)")),
            ("distances from", self.options.distance_source), ("model", self.model_name),
            ("continuous from", f"{self.options.continuous_m:g} m along the pipe"),
            ("clock position", CLOCK_FROM_ATTENTION if self.clock else CLOCK_NOT_ESTIMATED),
        ]  # fmt: skip
        return SurveyPage(self.header, self.rows, self.distances, self.photos, facts)


def attention_clock_of(model: Model):
    """``pixels -> clock hour`` from ``model``'s attention grid output; None when it has none."""
    if (
        model.attention_grids([np.zeros((model.card.in_channels, model.card.img_size, model.card.img_size), np.uint8)])
        is None
    ):
        return None

    def clock(pixels: np.ndarray) -> int | None:
        return attention_clock(model.attention_grids([model.fit(pixels)])[0])

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


def make_survey(options: SurveyOptions, given_header: dict, model_name: str, report, clock=None) -> Survey:
    """A :class:`Survey` from the options and header flags (``clock``: :func:`attention_clock_of`,
    used with ``options.clock``); bad files stop here, before any work."""
    if options.clock and clock is None:
        report(
            "--clock: this model file has no attention output (a baseline, or exported before it); no clock positions"
        )
    clock = clock if options.clock else None
    header = survey_header(options.header or None, **given_header)
    codes = CodeMap(options.standard, options.codes or None, warn=report)
    if options.telemetry:
        read_telemetry(options.telemetry)  # a bad row is named before the video is decoded
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
    model: Model, video: Path, out: Path, video_options: VideoOptions, survey: Survey, report, batch: int = 16
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
        self.readings: list[float | None] = []
        self.frames: deque[tuple[float, bytes]] = deque()
        self.earlier = _earlier_rows(out, report)
        self.track = read_telemetry(survey.options.telemetry) if survey.options.telemetry else None
        self.width = PAGE_PHOTO_WIDTH  # the camera's frame width (the photos are scaled to PAGE_PHOTO_WIDTH)

    def prepare(self, pixels: np.ndarray):
        """The reader thread's work per sample: the model's input, the counter and a small JPEG."""
        self.width = pixels.shape[1]
        reading = self.counter.read(pixels).metres if self.counter else None
        return self.model.fit(pixels), reading, jpeg(pixels, PAGE_PHOTO_WIDTH)

    def sample(self, time_s: float, reading: float | None, photo: bytes) -> tuple[str, str]:
        """Keep one scored sample; its distance as known now (``frames.csv``'s two columns)."""
        self.times.append(time_s)
        self.readings.append(reading)
        self.frames.append((time_s, photo))
        while self.frames and self.frames[0][0] < time_s - LIVE_PHOTO_WINDOW_S:
            self.frames.popleft()
        options = self.survey.options
        if self.track is not None:
            inside = self.track[0][0] <= time_s <= self.track[0][-1]
            return (f"{np.interp(time_s, *self.track):.3f}", TELEMETRY) if inside else ("", "")
        if options.speed:
            return f"{options.start_m + options.speed * time_s:.3f}", SPEED
        # the reading as read: the cleaning (and interpolation) needs the readings after it too
        return ("", "") if reading is None else (f"{reading:.3f}", READ)

    def distances(self) -> Distances:
        """The distances of the samples so far."""
        return distances_of(self.survey.options, self.times, self.readings)

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
            continuous_m=self.survey.options.continuous_m, with_nodes=False,
        )  # fmt: skip
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
        """``observations.*`` and ``report.html`` as they stand; ``final``: with the section's start
        (the first run's, kept across restarts) and finish (this run's last known distance)."""
        distances = distances or self.distances()
        self.survey.distances[self.name] = distances
        earlier = [row for row in self.earlier if row.get("label") != "finish"]
        rows = [*map(_observation, earlier), *self.survey.rows]
        if final:
            nodes = node_rows(distances, self.survey.codes, self.survey.header.section, self.name)
            has_start = any(row.label == "start" for row in rows)
            rows = [*nodes[: 1 if not has_start else 0], *rows, *nodes[1:]]
        write_observations(self.out, rows)
        page = self.survey.page()
        page.observations = rows  # earlier runs' rows too
        write_report(self.out, page)


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


def add_survey_arguments(parser: argparse.ArgumentParser) -> None:
    """The header flags and :class:`SurveyOptions` (``hybrid survey``'s, and ``hybrid serve --survey``'s)."""
    head = parser.add_argument_group("the survey header (or --header FILE.yaml; a flag given too wins)")
    for spec_field in fields(SurveyHeader):
        head.add_argument(f"--{spec_field.name.replace('_', '-')}", default=None, help=f"header: {spec_field.name}")
    add_options(parser.add_argument_group("the survey's distances and codes"), SurveyOptions)


def parser() -> argparse.ArgumentParser:
    """The command line of ``hybrid survey``."""
    out = argparse.ArgumentParser(
        prog="hybrid survey",
        description="A draft inspection survey (observations at metres along the pipe, in EN 13508-2 or PACP "
        "codes, for an inspector to review) from one video and an exported .onnx model.",
    )
    out.add_argument("model", nargs="?", help="the exported model file (model.onnx)")
    out.add_argument("video", nargs="?", help="the inspection video of one pipe section")
    out.add_argument("--out", default=".", help="folder for the survey's files (default: .)")
    out.add_argument(
        "--list-codes", action="store_true", help="print the code map (of --standard, or --codes) and exit"
    )
    add_survey_arguments(out)
    model = out.add_argument_group("the model and its events (as hybrid serve's)")
    model.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the model's)")
    model.add_argument(
        "--runtime", choices=sorted(RUNTIMES), default=DEFAULT_RUNTIME, help=f"(default: {DEFAULT_RUNTIME})"
    )
    model.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's choice)")
    model.add_argument("--batch", type=int, default=16, help="frames per forward pass (default: 16)")
    add_options(model, VideoOptions, exclude=("threshold",))
    return out


def header_flags(args: argparse.Namespace) -> dict:
    """The header fields given as flags."""
    return {f.name: getattr(args, f.name) for f in fields(SurveyHeader)}


def run(args: argparse.Namespace) -> int:
    """``hybrid survey`` with parsed ``args``; the exit code."""
    options = spec_from(SurveyOptions, vars(args))
    if args.list_codes:
        print(code_table(options.standard, options.codes or None))
        return 0
    if not args.model or not args.video:
        raise DataError("give MODEL.onnx and VIDEO (or --list-codes)")
    video, out = Path(args.video).expanduser(), Path(args.out).expanduser()
    if not video.is_file():
        raise DataError(f"{video}: no such video file (a survey is of one video, one pipe section)")
    video_options = VideoOptions(
        check_fps(args.fps), args.smoothing_s, args.merge_gap_s, args.min_duration_s, args.threshold
    )
    model = Model(Path(args.model).expanduser(), runtime=args.runtime, threads=args.threads)
    survey = make_survey(options, header_flags(args), Path(args.model).name, print_line, attention_clock_of(model))
    done = survey_video(model, video, out, video_options, survey, print_line, int(args.batch))
    print_line(
        f"{video.name}: {done['frames']} frames, {done['events']} events, {done['observations']} observations "
        f"({sum(o.review for o in survey.rows)} for review) in {done['seconds']:.1f} s; {out / 'report.html'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``hybrid survey``; a mistake ends in one line and exit code 2."""
    args = parser().parse_args(argv)
    try:
        return run(args)
    except HybridError as err:
        print_line(str(err))
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
