"""A live source through an exported model, for as long as the robot runs: a stream URL
(``udp://``, ``tcp://``, ``rtsp://``, ``http(s)://``), a V4L2 camera (``/dev/video0``), or a file
played at its own timestamps (``--realtime``, a stand-in camera).

A reader thread (:mod:`hybrid.video.live_source`) decodes the source, samples it at ``fps`` by stream
time and reopens it when it ends, stalls or restarts its timestamps; stream time stays monotonic.
The scorer (this module, the main thread) takes the samples in order while it keeps up and the
newest one when it falls more than ``max_lag_s`` behind, so it is never far behind the camera.

Each finding class's scores feed an :class:`~hybrid.video.events.EventTracker` with the offline
smoothing, merging and minimum duration, so a stream gives the events its recording gives
offline; each event is printed as one JSON line on stdout (flushed) the moment it can no longer
change, at most :meth:`~hybrid.video.events.EventTracker.latency_bound_s` after it ends, and appended
to ``events.csv``. At a gap in the stream the open events are closed at the last sample before
it (never merged across it) and the gap is printed as ``{"type": "gap", "from_s", "to_s",
"why"}`` and recorded in ``gaps.csv``. The run ends on Ctrl-C or SIGTERM (both close the open
events and write them, exit 0; a second signal is ignored while closing), or after ``give_up_s``
without a frame (exit 1). The files and their durability: :mod:`hybrid.serve.live_folder`.
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.predictions import frame_rows
from hybrid.serve.live_folder import HEARTBEAT_FILE, LiveFolder
from hybrid.serve.live_survey import LiveSurvey
from hybrid.serve.model import Model
from hybrid.serve.schema import LiveSettings, VideoOptions
from hybrid.serve.video_files import Findings
from hybrid.survey.schema import DISTANCE_COLUMNS
from hybrid.util.service import Heartbeat, Watchdog, notify
from hybrid.video.event_files import EVENTS_FILE
from hybrid.video.events import Event, EventTracker
from hybrid.video.live_source import Break, End, Gap, LiveSource, Sample, SampleHandoff, read_in_background

ROUND = 4  # decimals of times and scores in the printed lines, as in events.csv
POLL_S = 0.5  # the scorer wakes at least this often (a stop signal, the watchdog)


def stream_name(source: str) -> str:
    """The name a live source goes by in the outputs: its file stem, or its address with every
    run of other characters than letters, digits, ``.``, ``-`` made ``_``
    its query left out (``udp://127.0.0.1:5000`` -> ``udp_127.0.0.1_5000``)."""
    if "://" not in source and not source.startswith("/dev/"):
        return Path(source).stem
    return re.sub(r"[^A-Za-z0-9.-]+", "_", source.split("?")[0]).strip("_")


def event_line(event: Event, known_at_s: float, lag_s: float) -> dict:
    """The printed form of a closed event: an ``events.csv`` row plus when (stream time) it was
    known, never before its end, and how far behind the camera the scorer then was."""
    row = {key: round(value, ROUND) if isinstance(value, float) else value for key, value in event.row().items()}
    known = max(known_at_s, event.end_s)
    return {"type": "event", **row, "known_at_s": round(known, ROUND), "lag_s": round(lag_s, ROUND)}


@dataclass
class LiveRun:
    """One live source's state: the trackers of each finding class, and the folder it writes."""

    model: Model
    name: str
    folder: LiveFolder
    options: VideoOptions
    source: str = ""
    show_frames: bool = False
    emit: object = None  # takes each JSON line (default: stdout, flushed)
    report: object = None  # takes each line for the user
    frames: int = 0
    events: int = 0
    gaps: int = 0
    first_time_s: float | None = None
    last_time_s: float = 0.0
    largest_lag_s: float = 0.0  # the longest a scored sample waited, this run
    last_lag_s: float = 0.0
    survey: LiveSurvey | None = None  # --survey: samples then carry the counter's reading and a photo
    heartbeat: Heartbeat | None = field(default=None, init=False)

    def __post_init__(self):
        self.findings = Findings(self.model, self.options)
        self.trackers = self._new_trackers()
        self.emit = self.emit or (lambda line: print(line, flush=True))
        self.report = self.report or (lambda line: None)
        self.handlers = {Sample: self.add, Break: self.interrupt, Gap: self.gap}

    def _new_trackers(self) -> dict[str, EventTracker]:
        return {
            label: EventTracker(self.name, label, self.findings.settings[label]) for label, _ in self.findings.classes
        }

    @property
    def latency_bound_s(self) -> float:
        """At most how long after its end (in stream time) an event is printed."""
        return EventTracker.latency_bound_s(self.findings.common, self.options.fps)

    @property
    def started(self) -> bool:
        """Whether a frame came (the folder's files are open)."""
        return self.heartbeat is not None

    def take(self, item: Sample | Break | Gap) -> None:
        """One item of the reader: a sample to score, a break to close at, a gap to record."""
        self.handlers[type(item)](item)

    def _start(self, sample: Sample) -> None:
        """At the first frame (a source that never sends one leaves ``--out`` as it was)."""
        for line in self.folder.start(self.source, self.name, sample.time_s):
            self.report(line)
        self.heartbeat = Heartbeat(self.folder.out / HEARTBEAT_FILE)
        self.first_time_s = sample.time_s
        if self.folder.resume_s is not None:
            why = f"hybrid serve started again (run {self.folder.run})"
            self.gap(Gap(self.folder.resume_s, sample.time_s, why))

    def add(self, sample: Sample) -> None:
        """Score one sampled frame; print (and write) the events it closes."""
        if not self.started:
            self._start(sample)
        pixels, distance = sample.pixels, []
        if self.survey is not None:
            pixels, reading, photo = sample.pixels
            distance = list(self.survey.sample(sample.time_s, reading, photo))
        probs = self.model.predict([pixels], batch_size=1)
        lag_s = time.monotonic() - sample.arrived
        label = self.findings.labels(probs)[0]
        row = frame_rows(self.name, [sample.index], [sample.time_s], probs, [label])[0]
        self.folder.frames.append([[*row, *distance, self.folder.run, f"{lag_s:.3f}"]])
        self.heartbeat.beat()
        self.frames, self.last_time_s, self.last_lag_s = self.frames + 1, sample.time_s, lag_s
        self.largest_lag_s = max(self.largest_lag_s, lag_s)
        if self.show_frames:
            scores = {name: round(float(p), ROUND) for name, p in zip(self.model.class_names, probs[0], strict=True)}
            self._print({"type": "frame", "video": self.name, "frame_index": sample.index,
                         "time_s": round(sample.time_s, ROUND), "prediction": label, "scores": scores,
                         "lag_s": round(lag_s, ROUND)})  # fmt: skip
        closed = [
            e
            for lab, column in self.findings.classes
            for e in self.trackers[lab].add([sample.time_s], probs[:, column])
        ]
        self._publish(closed, sample.time_s)

    def interrupt(self, stop: Break | None = None) -> None:
        """The source stopped: every open event closes at the last sample before the stop (the
        trackers start anew, so nothing merges across it)."""
        if not self.started:
            return
        self._publish([e for tracker in self.trackers.values() for e in tracker.close()], self.last_time_s)
        self.trackers = self._new_trackers()

    def gap(self, gap: Gap) -> None:
        """Print and record a stretch without frames."""
        self.gaps += 1
        self.folder.add_gap(self.name, gap.from_s, gap.to_s, gap.why)
        self._print({"type": "gap", "video": self.name, "from_s": round(gap.from_s, ROUND),
                     "to_s": round(gap.to_s, ROUND), "why": gap.why})  # fmt: skip

    def close(self) -> None:
        """End of the run: the events still open are closed, printed and written; files synced."""
        self.interrupt()
        if self.survey is not None and self.started:
            self.survey.write(final=True)
        self.folder.close()

    def _publish(self, closed: list[Event], known_at_s: float) -> None:
        if not closed:
            return
        closed.sort(key=lambda e: (e.start_s, e.label))
        self.folder.add_events(closed)
        self.events += len(closed)
        for event in closed:
            self._print(event_line(event, known_at_s, self.last_lag_s))
        if self.survey is not None:
            self.survey.events(closed)

    def _print(self, line: dict) -> None:
        self.emit(json.dumps(line))


class Silence:
    """How long the scorer has heard no sample: the run ends once ``give_up_s`` has passed (the
    reader cannot say so itself: it may wait on a silent socket)."""

    def __init__(self, give_up_s: float, now: float):
        self.give_up_s, self.last_sample = give_up_s, now

    def heard(self, item) -> None:
        """An item of the reader: a sample starts a new silence."""
        if isinstance(item, Sample):
            self.last_sample = time.monotonic()

    def given_up(self, now: float) -> bool:
        """Whether ``give_up_s`` has passed without a sample."""
        return now - self.last_sample >= self.give_up_s


class StopSignals:
    """SIGINT and SIGTERM as a request to stop (``received`` names the first), not an exception:
    the loop finishes the sample in hand, then closes. Later signals change nothing, so a second
    cannot cut the closing short (the handler stays installed: a handler swapped for SIG_IGN while
    another signal is pending makes Python raise at a random point); the old handlers come back on
    leaving."""

    def __init__(self):
        self.received: str | None = None
        self.names = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "stopped (SIGTERM)"}

    def _handle(self, number, frame) -> None:
        self.received = self.received or self.names[number]

    def __enter__(self):
        self._old = {kind: signal.signal(kind, self._handle) for kind in self.names}
        return self

    def __exit__(self, *exc) -> None:
        for kind, handler in self._old.items():
            signal.signal(kind, handler)


def serve_live(
    model: Model, source: str, out: Path, options: VideoOptions, settings: LiveSettings, *, show_frames: bool, report,
    survey=None,
) -> dict:  # fmt: skip
    """Serve the live ``source`` until a signal or ``settings.give_up_s`` without a frame;
    ``report`` takes each line for the user (how it went, the bounds). ``survey``: a
    :class:`~hybrid.serve.survey_run.Survey` to keep as the robot drives (``--survey``)."""
    name = stream_name(source)
    folder = LiveFolder(out, model.path, model.class_names, DISTANCE_COLUMNS if survey else ())
    run = LiveRun(model, name, folder, options, source=source, show_frames=show_frames, report=report)
    if survey is not None:
        run.survey = LiveSurvey(model, survey, out, name, lambda line: run.emit(json.dumps(line)), report)
    reader = LiveSource(
        source, options.fps, model.card.in_channels, timeout_s=settings.timeout, realtime=settings.realtime,
        start_s=folder.resume_s or 0.0, start_wall=folder.resume_wall,
        prepare=run.survey.prepare if run.survey else model.fit, report=report,
    )  # fmt: skip
    handoff = SampleHandoff(settings.max_lag_s)
    common = run.findings.common
    report(
        f"{source}: sampling {options.fps:g} frames/s into {out} (run {folder.run}); an event is printed at most "
        f"{run.latency_bound_s:g} s after it ends (smoothing {common.smoothing_s:g} s / 2 + merge gap "
        f"{common.merge_gap_s:g} s + one sample); a sample that waited over {settings.max_lag_s:g} s is skipped "
        f"for the newest; reopened after {settings.timeout:g} s without frames, given up after "
        f"{settings.give_up_s:g} s"
    )
    started, end, watchdog = time.perf_counter(), None, Watchdog()
    with StopSignals() as signals:
        notify("READY=1", f"STATUS=reading {source}")
        read_in_background(reader, handoff)
        silent = Silence(settings.give_up_s, time.monotonic())
        while signals.received is None and end is None:
            watchdog.alive()
            item = handoff.take(POLL_S)
            if isinstance(item, End):
                end = item
            elif item is not None:
                silent.heard(item)
                run.take(item)
            elif silent.given_up(time.monotonic()):
                lost = f" (last: {reader.problem})" if reader.problem else ""
                end = End(f"{source}: no frame for {settings.give_up_s:g} s{lost}; gave up", stalled=True)
        notify("STOPPING=1")
        reader.stop.set()
        run.close()
        why = signals.received or end.why
        span = run.last_time_s - (run.first_time_s or 0.0)
        report(  # still under StopSignals: a late signal cannot cut this line short either
            f"{why}; run {folder.run}: {run.frames} frames over {span:.1f} s of stream, {run.events} events in "
            f"{out / EVENTS_FILE}, {run.gaps} gaps; {handoff.skipped} samples skipped to keep up (lag at most "
            f"{run.largest_lag_s:.2f} s); {reader.damaged_packets} damaged packets; {reader.reconnects} reconnections"
        )
    return {"frames": run.frames, "events": run.events, "gaps": run.gaps, "skipped": handoff.skipped,
            "stalled": signals.received is None and end.stalled, "seconds": time.perf_counter() - started}  # fmt: skip
