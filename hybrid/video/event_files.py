"""The files of timed events: ``events.csv`` (one row per event), ``events.json`` (the CCTV-Pipe
results format, which ``hybrid evaluate-video`` scores) and the challenge's truth files, written
atomically and read with one clear line for a bad entry."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from hybrid.errors import DataError
from hybrid.util.atomic import atomic_write, atomic_write_text
from hybrid.video.events import Event

EVENTS_FILE = "events.csv"


RESULTS_FILE = "events.json"


EVENT_COLUMNS = ["video", "label", "start_s", "end_s", "peak_s", "peak_score", "mean_score"]


EVENT_FLOAT_FORMAT = "%.4f"


def event_cells(event: Event) -> list:
    """The ``events.csv`` row of ``event``: times and scores to 4 decimals."""
    row = event.row()
    return [row[c] if isinstance(row[c], str) else EVENT_FLOAT_FORMAT % row[c] for c in EVENT_COLUMNS]


def results(events: Sequence[Event], videos: Sequence[str]) -> dict:
    """``{"results": {video: [{"label", "moment", "score"}]}}``: each event's peak time and score,
    every processed video listed (the CCTV-Pipe results format, for ``hybrid.jobs.evaluate_video``)."""
    found: dict[str, list] = {video: [] for video in videos}
    for e in events:
        found[e.video].append({"label": e.label, "moment": round(e.peak_s, 3), "score": round(e.peak_score, 6)})
    return {"results": found}


def write_events(folder: Path, events: Sequence[Event], videos: Sequence[str]) -> None:
    """``events.csv`` (one row per event) and ``events.json`` (:func:`results`) in ``folder``, each
    written whole, atomically."""

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(EVENT_COLUMNS)
            out.writerows(event_cells(e) for e in events)

    atomic_write(folder / EVENTS_FILE, write_csv)
    atomic_write_text(folder / RESULTS_FILE, json.dumps(results(events, videos), indent=1) + "\n")


def _read_json(path: Path, role: str, top: str) -> dict:
    if not path.is_file():
        raise DataError(f"{role}={path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{role}={path}: not JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get(top), dict):
        raise DataError(f'{role}={path}: expected {{"{top}": {{video: ...}}}}')
    return data[top]


def _entry(path: Path, video: str, item, keys: tuple[str, ...]) -> tuple:
    try:
        return tuple(item[k] if k == "label" else float(item[k]) for k in keys)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: video {video}: an entry lacks a number for one of {list(keys)}: {item}") from err


def read_truth(path: Path) -> list[tuple[str, str, float]]:
    """``(video, label, moment)`` of every annotation in a CCTV-Pipe ground-truth file."""
    database = _read_json(path, "labels", "database")
    rows = []
    for video, entry in database.items():
        for item in (entry or {}).get("annotations", []):
            rows.append((video, *_entry(path, video, item, ("label", "moment"))))
    if not rows:
        raise DataError(f"labels={path}: no annotations")
    return rows


def read_predictions(path: Path) -> list[tuple[str, str, float, float]]:
    """``(video, label, moment, score)`` of every prediction in a CCTV-Pipe results file."""
    results = _read_json(path, "predictions", "results")
    return [
        (video, *_entry(path, video, item, ("label", "moment", "score")))
        for video, items in results.items()
        for item in items or []
    ]
