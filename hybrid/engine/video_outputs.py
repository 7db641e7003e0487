"""The picture a video run leaves per video, ``timeline.png`` (its files, ``frames.csv``,
``events.csv`` and ``events.json``, are written by :mod:`hybrid.predictions` and
:mod:`hybrid.video.events`, which torch-free serving shares)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hybrid.engine.outputs import pyplot
from hybrid.video.events import Event


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
