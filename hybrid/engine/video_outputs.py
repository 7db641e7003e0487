"""Files a video run leaves: ``frames.csv``, ``events.csv``, ``events.json`` (the CCTV-Pipe
results format) and each video's ``timeline.png``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.engine.outputs import pyplot
from hybrid.events import Event
from hybrid.util.atomic import atomic_write, atomic_write_text

EVENT_COLUMNS = ["video", "label", "start_s", "end_s", "peak_s", "peak_score", "mean_score"]


def frames_table(
    video: str, frame_indices: Sequence[int], times: Sequence[float], probs: np.ndarray, class_names, predicted
) -> pd.DataFrame:
    """One row per sampled frame: ``video, frame_index, time_s``, a score column per class, ``prediction``."""
    frame = pd.DataFrame(probs, columns=list(class_names))
    frame.insert(0, "time_s", np.round(np.asarray(times, np.float64), 4))
    frame.insert(0, "frame_index", list(frame_indices))
    frame.insert(0, "video", video)
    frame["prediction"] = list(predicted)
    return frame


def write_frames(path: Path, tables: Sequence[pd.DataFrame]) -> None:
    """``frames.csv``: every video's rows, in order (rewritten whole, atomically, after each video)."""
    frame = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))


def write_events(run_dir: Path, events: Sequence[Event], videos: Sequence[str]) -> None:
    """``events.csv`` (one row per event) and ``events.json``: ``{"results": {video: [{"label",
    "moment", "score"}]}}`` with the event's peak time and score, every processed video listed."""
    frame = pd.DataFrame([e.row() for e in events], columns=EVENT_COLUMNS)
    atomic_write(run_dir / "events.csv", lambda tmp: frame.to_csv(tmp, index=False, float_format="%.4f"))
    results: dict[str, list] = {video: [] for video in videos}
    for e in events:
        results[e.video].append({"label": e.label, "moment": round(e.peak_s, 3), "score": round(e.peak_score, 6)})
    atomic_write_text(run_dir / "events.json", json.dumps({"results": results}, indent=1) + "\n")


@dataclass
class TimelineTruth:
    """What is known to be in a video, drawn under its score curves: annotated ``moments``
    ``(label, s)`` and true ``segments`` ``(label, start_s, end_s)``, read from ``source``."""

    source: str
    moments: list[tuple[str, float]] = field(default_factory=list)
    segments: list[tuple[str, float, float]] = field(default_factory=list)


TRUTH_BAND = (-0.11, 0.08)  # (bottom, height) of the strip under the curves that holds the truth


def draw_truth(ax, truth: TimelineTruth, colours: dict[str, str]) -> None:
    """``truth`` in the strip under the curves: segments as bars, moments as ticks."""
    bottom, height = TRUTH_BAND
    by_name = {name.lower(): colour for name, colour in colours.items()}
    for label, start, end in truth.segments:
        ax.broken_barh([(start, end - start)], (bottom, height), color=by_name.get(label.lower(), "grey"), alpha=0.6)
    if truth.moments:
        moments = [moment for _, moment in truth.moments]
        ax.plot(moments, [bottom + height / 2] * len(moments), linestyle="none", marker="|", markersize=14,
                color="black", label=f"truth ({truth.source})")  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.5)


def timeline_figure(
    video: str,
    times: Sequence[float],
    curves: dict[str, np.ndarray],
    events: Sequence[Event],
    thresholds: dict[str, float],
    max_curves: int = 8,
    truth: TimelineTruth | None = None,
):
    """``timeline.png``: score curves over time (the classes with events first, then the highest),
    each event shaded in its curve's colour, the threshold drawn (one line, or one per shown class
    in its colour); with ``truth``, its segments and moments in a strip underneath."""
    plt = pyplot()
    with_events = list(dict.fromkeys(e.label for e in events))
    by_peak = sorted(curves, key=lambda name: -float(np.max(curves[name])) if len(curves[name]) else 0.0)
    shown = list(dict.fromkeys([*with_events, *by_peak]))[:max_curves]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    colours = {}
    for name in shown:
        (line,) = ax.plot(times, curves[name], linewidth=1.2, label=name)
        colours[name] = line.get_color()
    for e in events:
        ax.axvspan(e.start_s, e.end_s, color=colours.get(e.label, "grey"), alpha=0.18, linewidth=0)
        ax.plot([e.peak_s], [e.peak_score], marker="v", color=colours.get(e.label, "grey"), markersize=6)
    levels = {thresholds[name] for name in shown}
    if len(levels) == 1:
        level = levels.pop()
        ax.axhline(level, color="black", linestyle="--", linewidth=0.8, label=f"threshold {level:.2f}")
    else:
        for name in shown:
            ax.axhline(thresholds[name], color=colours[name], linestyle="--", linewidth=0.8)
    title = f"{video}: {len(events)} events"
    if truth is not None:
        draw_truth(ax, truth, colours)
        title += f"; truth: {len(truth.moments) or len(truth.segments)} annotations ({truth.source})"
    ax.set_ylim(TRUTH_BAND[0] - 0.01 if truth is not None else 0, 1.02)
    ax.set_xlim(0, max(float(times[-1]) if len(times) else 1.0, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(len(shown) + 2, 5), loc="upper right")
    fig.tight_layout()
    return fig
