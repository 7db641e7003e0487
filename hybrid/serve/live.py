"""A live source through an exported model: a stream URL (``udp://``, ``tcp://``, ``rtsp://``,
``http(s)://``), a V4L2 camera (``/dev/video0``), or a file played at its own timestamps
(``--realtime``, a stand-in camera).

Frames are sampled at ``fps`` by stream time (seconds since the first frame) and scored one at a
time as they arrive. Each finding class's scores feed an :class:`~hybrid.events.EventTracker` with
the offline smoothing, merging and minimum duration, so a stream gives the events its recording
gives offline; each event is printed as one JSON line on stdout (flushed) the moment it can no
longer change, at most :meth:`~hybrid.events.EventTracker.latency_bound_s` after it ends
(smoothing/2 + merge gap + one sample), and appended to ``events.csv``; ``events.json`` is
rewritten with it. ``frames`` prints a line per sampled frame too (``frames.csv`` has every one).
When the stream ends or stalls, or on Ctrl-C, the open events are closed and written.
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.errors import DataError
from hybrid.events import EVENTS_FILE, RESULTS_FILE, Event, EventTracker, append_events, results
from hybrid.predictions import FRAMES_FILE, append_frames, frame_rows
from hybrid.serve.model import Model
from hybrid.serve.video import Findings, VideoOptions
from hybrid.util.atomic import atomic_write_text
from hybrid.util.video import LiveFrames

ROUND = 4  # decimals of times and scores in the printed lines, as in events.csv


def stream_name(source: str) -> str:
    """The name a live source goes by in the outputs: its file stem, or its address with every
    run of other characters than letters, digits, ``.``, ``-`` made ``_``
    its query left out (``udp://127.0.0.1:5000`` -> ``udp_127.0.0.1_5000``)."""
    if "://" not in source and not source.startswith("/dev/"):
        return Path(source).stem
    return re.sub(r"[^A-Za-z0-9.-]+", "_", source.split("?")[0]).strip("_")


def event_line(event: Event, known_at_s: float) -> dict:
    """The printed form of a closed event: an ``events.csv`` row plus when (stream time) it was known."""
    row = {key: round(value, ROUND) if isinstance(value, float) else value for key, value in event.row().items()}
    return {"type": "event", **row, "known_at_s": round(known_at_s, ROUND)}


@dataclass
class LiveRun:
    """One live source's state: the trackers of each finding class, and what was written."""

    model: Model
    name: str
    out: Path
    options: VideoOptions
    show_frames: bool = False
    emit: object = None  # takes each JSON line (default: stdout, flushed)
    events: list[Event] = field(default_factory=list)
    frames: int = 0
    last_time_s: float = 0.0

    def __post_init__(self):
        self.findings = Findings(self.model, self.options)
        self.trackers = {
            label: EventTracker(self.name, label, self.findings.settings[label]) for label, _ in self.findings.classes
        }
        self.emit = self.emit or (lambda line: print(line, flush=True))
        taken = [name for name in (EVENTS_FILE, FRAMES_FILE) if (self.out / name).exists()]
        if taken:
            raise DataError(f"--out {self.out} already holds {', '.join(taken)} of another run; give another folder")

    def _start(self) -> None:
        """At the first frame (a source that never sends one leaves ``--out`` as it was): the
        folder, ``events.csv``'s header and an empty ``events.json``, as offline."""
        self.out.mkdir(parents=True, exist_ok=True)
        append_events(self.out / EVENTS_FILE, [])
        self._write_results()

    @property
    def latency_bound_s(self) -> float:
        """At most how long after its end (in stream time) an event is printed."""
        return EventTracker.latency_bound_s(self.findings.common, self.options.fps)

    def add(self, frame_index: int, time_s: float, pixels) -> None:
        """Score one sampled frame; print (and write) the events it closes."""
        if not self.frames:
            self._start()
        probs = self.model.predict([self.model.fit(pixels)], batch_size=1)
        label = self.findings.labels(probs)[0]
        append_frames(
            self.out / FRAMES_FILE,
            self.model.class_names,
            frame_rows(self.name, [frame_index], [time_s], probs, [label]),
        )
        self.frames, self.last_time_s = self.frames + 1, time_s
        if self.show_frames:
            scores = {name: round(float(p), ROUND) for name, p in zip(self.model.class_names, probs[0], strict=True)}
            self._print({"type": "frame", "video": self.name, "frame_index": frame_index,
                         "time_s": round(time_s, ROUND), "prediction": label, "scores": scores})  # fmt: skip
        closed = [
            e for lab, column in self.findings.classes for e in self.trackers[lab].add([time_s], probs[:, column])
        ]
        self._publish(closed, time_s)

    def close(self) -> None:
        """End of the stream: the events still open are closed, printed and written."""
        if not self.frames:
            return
        self._publish([e for tracker in self.trackers.values() for e in tracker.close()], self.last_time_s)

    def _publish(self, closed: list[Event], known_at_s: float) -> None:
        if not closed:
            return
        closed.sort(key=lambda e: (e.start_s, e.label))
        append_events(self.out / EVENTS_FILE, closed)
        self.events += closed
        self._write_results()
        for event in closed:
            self._print(event_line(event, known_at_s))

    def _write_results(self) -> None:
        ordered = sorted(self.events, key=lambda e: (e.start_s, e.label))
        atomic_write_text(self.out / RESULTS_FILE, json.dumps(results(ordered, [self.name]), indent=1) + "\n")

    def _print(self, line: dict) -> None:
        self.emit(json.dumps(line))


def serve_live(
    model: Model, source: str, out: Path, options: VideoOptions, *, show_frames: bool, realtime: bool,
    timeout_s: float, report,
) -> dict:  # fmt: skip
    """Serve the live ``source`` until it ends or stalls, or Ctrl-C; ``report`` takes each line
    for the user (how it went, the latency bound)."""
    live = LiveFrames(source, options.fps, model.card.in_channels, timeout_s=timeout_s, realtime=realtime)
    run = LiveRun(model, stream_name(source), out, options, show_frames=show_frames)
    common = run.findings.common
    report(
        f"{source}: sampling {options.fps:g} frames/s; an event is printed at most {run.latency_bound_s:g} s "
        f"after it ends (smoothing {common.smoothing_s:g} s / 2 + merge gap {common.merge_gap_s:g} s "
        f"+ one sample); waiting up to {timeout_s:g} s for frames"
    )
    started, stopped_by = time.perf_counter(), None
    try:
        for frame_index, time_s, pixels in live.frames():
            run.add(frame_index, time_s, pixels)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the closing short
        stopped_by = "interrupted (Ctrl-C)"
    run.close()
    report(f"{stopped_by or live.problem or source}; {run.frames} frames over {run.last_time_s:.1f} s, "
           f"{len(run.events)} events in {out / EVENTS_FILE}")  # fmt: skip
    return {"frames": run.frames, "events": len(run.events), "stalled": stopped_by is None and live.stalled,
            "seconds": time.perf_counter() - started}  # fmt: skip
