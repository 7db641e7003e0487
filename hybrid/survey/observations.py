"""From timed events to a survey's observations, at metres along the pipe.

An event that spans less than the continuous length (``continuous_m``, 1 m: EN 13508-2 and PACP
code a defect longer than 1 m as continuous) is one observation at the distance of its peak
frame. A longer one is a continuous defect: a start row (``S01``) at the distance where it began,
with ``end_m``, and a finish row (``F01``) where it ended, numbered in survey order. The section's
start and finish (the first and last known distance) are observations too (EN 13508-2's start and
finish node, PACP's access points). Each row keeps the video time at its distance, the model's
score and whether the inspector must review it (the code map's ``review``, or an unknown distance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

from hybrid.survey.codes import FINISH, START, CodeMap
from hybrid.survey.distance import Distances
from hybrid.video.events import Event

# EN 13508-2 and PACP: a defect longer than this along the pipe is coded as continuous.
CONTINUOUS_M = 1.0


@dataclass
class Observation:
    """One row of ``observations.csv``: at ``distance_m`` (continuous start rows: to ``end_m``),
    the standard's ``code`` for the model's ``label``, ``continuous`` (``S01``/``F01``, or empty),
    the clock position (empty: not estimated), ``video_s`` (the video time at ``distance_m``),
    ``score`` (the event's peak), ``photo`` (a file in ``photos/``) and ``review``."""

    section: str
    distance_m: float
    end_m: float | None
    code: str
    label: str
    description: str
    continuous: str
    clock_from: str
    clock_to: str
    video: str
    video_s: float
    score: float | None
    photo: str
    review: bool
    photo_s: float | None = None  # the frame the photo shows (not written)

    def row(self) -> dict:
        """The ``observations.csv`` / ``.json`` fields (distances to the centimetre)."""
        out = {key: value for key, value in asdict(self).items() if key != "photo_s"}
        out["distance_m"] = None if math.isnan(self.distance_m) else round(self.distance_m, 2)
        out["end_m"] = None if self.end_m is None else round(self.end_m, 2)
        out["video_s"] = round(self.video_s, 2)
        out["score"] = None if self.score is None else round(self.score, 4)
        return out


OBSERVATION_COLUMNS = [f.name for f in fields(Observation) if f.name != "photo_s"]


def _defect_rows(event: Event, distances: Distances, codes: CodeMap, section: str, continuous_m: float, number: int):
    """One event's rows: a point observation, or a continuous start / finish pair (``number``)."""
    code = codes.lookup(event.label)
    start_m, end_m, peak_m = (distances.at(t) for t in (event.start_s, event.end_s, event.peak_s))
    unknown = any(math.isnan(m) for m in (start_m, end_m, peak_m))

    def row(distance: float, marker: str, video_s: float, **more) -> Observation:
        return Observation(
            section, distance, more.pop("end_m", None), code.code, event.label, code.name, marker, "", "",
            event.video, video_s, event.peak_score, "", code.review or unknown, **more,
        )  # fmt: skip

    if unknown or abs(end_m - start_m) <= continuous_m:
        return [row(peak_m, "", event.peak_s, photo_s=event.peak_s)]
    return [
        row(start_m, f"S{number:02d}", event.start_s, end_m=end_m, photo_s=event.peak_s),
        row(end_m, f"F{number:02d}", event.end_s, photo_s=min(event.end_s, float(distances.times[-1]))),
    ]


def node_rows(distances: Distances, codes: CodeMap, section: str, video: str) -> list[Observation]:
    """The section's start and finish observations, at the first and last known distance."""
    known = [i for i, m in enumerate(distances.metres) if not math.isnan(m)]
    if not known:
        return []
    rows = []
    for label, index in ((START, known[0]), (FINISH, known[-1])):
        code = codes.lookup(label)
        time_s = float(distances.times[index])
        rows.append(
            Observation(
                section,
                float(distances.metres[index]),
                None,
                code.code,
                label.lstrip("@"),
                code.name,
                "",
                "",
                "",
                video,
                time_s,
                None,
                "",
                code.review,
                photo_s=time_s,
            )
        )
    return rows


def observations(
    video: str, events: Sequence[Event], distances: Distances, codes: CodeMap, *, section: str = "",
    continuous_m: float = CONTINUOUS_M, with_nodes: bool = True, pairs_before: int = 0,
) -> list[Observation]:  # fmt: skip
    """The survey of one video: its events as observations (in video time order, continuous pairs
    numbered in that order after ``pairs_before`` earlier ones), between the start and finish nodes."""
    rows, number = [], pairs_before
    for event in sorted(events, key=lambda e: (e.start_s, e.label)):
        found = _defect_rows(event, distances, codes, section, continuous_m, number + 1)
        number += len(found) == 2
        rows += found
    rows.sort(key=lambda o: o.video_s)
    if not with_nodes:
        return rows
    nodes = node_rows(distances, codes, section, video)
    return nodes[:1] + rows + nodes[1:]
