"""The ``--out`` folder of a live run, which a robot's restarts continue rather than replace.

Files (docs/robot.md, "Files of a live run"):

- ``live.json``: the model (path and sha256) and every start of a run in the folder (``run``,
  ``started`` UTC, ``source``, ``first_s``), rewritten atomically and durably at each start;
- ``frames.csv``: the offline columns, then ``run`` (which start scored it) and ``lag_s`` (how
  long after the frame was decoded its score was known);
- ``events.csv``: the offline columns, then ``run``; ``events.json`` (CCTV-Pipe format) rewritten
  with every event of every run;
- ``gaps.csv``: ``video, run, from_s, to_s, why`` for each stretch without frames (a camera that
  restarted, a stall, timestamps that jumped, a restart of ``hybrid serve`` itself);
- ``heartbeat``: an empty file whose modification time is refreshed at each scored sample.

Stream time continues across runs: a new run starts where the last frame of the folder was plus
the wall-clock time since that frame was written, so times never repeat and events of different
runs never overlap. A folder holding an offline run's outputs, or a live run of another model
(its sha256 differs), is refused in one line before anything is read.

Durability: rows are appended whole (:class:`~hybrid.util.journal.CsvJournal`); events and gaps
are fsynced as they are appended, frames at most every :data:`FRAMES_SYNC_S`; so after ``kill -9``
every file is whole, and after a power cut at most the last second of frames and the events open
at that moment are missing.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
from pathlib import Path

from hybrid.errors import DataError
from hybrid.predictions import FRAMES_FILE, frames_header
from hybrid.util.atomic import atomic_write_text
from hybrid.util.journal import CsvJournal, last_row
from hybrid.video.event_files import EVENT_COLUMNS, EVENTS_FILE, RESULTS_FILE, event_cells, results
from hybrid.video.events import Event

STATE_FILE = "live.json"
GAPS_FILE = "gaps.csv"
HEARTBEAT_FILE = "heartbeat"
GAP_COLUMNS = ["video", "run", "from_s", "to_s", "why"]
LIVE_FRAME_COLUMNS = ["run", "lag_s"]  # after the offline frames.csv columns
LIVE_EVENT_COLUMNS = [*EVENT_COLUMNS, "run"]
FRAMES_SYNC_S = 1.0  # frames.csv is fsynced at most this often (events and gaps at once)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_events(path: Path) -> list[Event]:
    """The events of a live ``events.csv`` (any run), as written (times to 4 decimals)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    floats = EVENT_COLUMNS[2:]
    return [Event(r["video"], r["label"], *(float(r[c]) for c in floats)) for r in rows]


class LiveFolder:
    """The ``--out`` folder of a live run of ``model_path`` with ``class_names``: checked when made
    (refusals in one line), files opened by :meth:`start` at the first frame (a source that never
    sends one leaves the folder as it was)."""

    def __init__(self, out: Path, model_path: str, class_names: list[str], extra_frame_columns: tuple[str, ...] = ()):
        self.out, self.class_names, self.extra_frame_columns = Path(out), list(class_names), extra_frame_columns
        self.digest = file_sha256(model_path)
        self.state = self._read_state(model_path)
        self.run = len(self.state["runs"]) + 1
        self.resume_s, self.resume_wall = self._resume_point()
        self.events: list[Event] = []
        self.videos: list[str] = []
        self.frames = self.event_rows = self.gaps = None

    def _read_state(self, model_path: str) -> dict:
        path = self.out / STATE_FILE
        if not path.exists():
            taken = [name for name in (EVENTS_FILE, FRAMES_FILE) if (self.out / name).exists()]
            if taken:
                raise DataError(
                    f"--out {self.out} holds {', '.join(taken)} of an offline run (no {STATE_FILE}); give another folder"
                )
            return {"model": str(model_path), "model_sha256": self.digest, "runs": []}
        try:
            state = json.loads(path.read_text())
            recorded, recorded_model = state["model_sha256"], state["model"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path}: not a live run's record ({err}); give another folder") from err
        if recorded != self.digest:
            raise DataError(
                f"--out {self.out} holds a live run of another model ({recorded_model}, sha256 {recorded[:12]}); "
                "give another folder"
            )
        return state

    def _resume_point(self) -> tuple[float | None, float | None]:
        """The last frame's stream time and when it was written (``None``: a new folder)."""
        path = self.out / FRAMES_FILE
        row = last_row(path)
        if row is None:
            return None, None
        return float(row[2]), path.stat().st_mtime

    def start(self, source: str, video: str, first_s: float) -> list[str]:
        """Open (or continue) the files at the first frame of this run; lines for the user (a torn
        end cut off)."""
        self.out.mkdir(parents=True, exist_ok=True)
        frame_columns = [*frames_header(self.class_names, self.extra_frame_columns), *LIVE_FRAME_COLUMNS]
        self.frames = CsvJournal(self.out / FRAMES_FILE, frame_columns, FRAMES_SYNC_S)
        self.event_rows = CsvJournal(self.out / EVENTS_FILE, LIVE_EVENT_COLUMNS, 0.0)
        self.gaps = CsvJournal(self.out / GAPS_FILE, GAP_COLUMNS, 0.0)
        self.events = read_events(self.out / EVENTS_FILE)
        self.videos = sorted({e.video for e in self.events} | {video})
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.state["runs"].append({"run": self.run, "started": started, "source": source, "first_s": first_s})
        atomic_write_text(self.out / STATE_FILE, json.dumps(self.state, indent=1) + "\n", durable=True)
        self.write_results()
        return [
            f"{journal.path}: its last line was torn ({journal.dropped_bytes} bytes, a power cut?); cut off"
            for journal in (self.frames, self.event_rows, self.gaps)
            if journal.dropped_bytes
        ]

    def add_events(self, events: list[Event]) -> None:
        """Append ``events`` to ``events.csv`` (durably) and rewrite ``events.json``."""
        self.event_rows.append([[*event_cells(e), self.run] for e in events], durable=True)
        self.events += events
        self.write_results()

    def add_gap(self, video: str, from_s: float, to_s: float, why: str) -> None:
        """Append a gap to ``gaps.csv`` (durably)."""
        self.gaps.append([[video, self.run, f"{from_s:.4f}", f"{to_s:.4f}", why]], durable=True)

    def write_results(self) -> None:
        """``events.json`` with every event in the folder, replaced atomically and durably."""
        ordered = sorted(self.events, key=lambda e: (e.start_s, e.label))
        text = json.dumps(results(ordered, self.videos), indent=1) + "\n"
        atomic_write_text(self.out / RESULTS_FILE, text, durable=True)

    def close(self) -> None:
        """fsync and close the files (when they were opened)."""
        for journal in (self.frames, self.event_rows, self.gaps):
            if journal is not None:
                journal.close()
