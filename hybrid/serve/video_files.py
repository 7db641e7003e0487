"""Inspection videos through an exported model, torch-free: frames sampled by timestamp
(:mod:`hybrid.video.sampling`), scored in batches, each class's score curve made into timed events
(:mod:`hybrid.video.events`). Writes what ``infer.py input=VIDEO`` writes, with the same writers:
``frames.csv``, ``events.csv`` and ``events.json`` (CCTV-Pipe results format), rewritten after
every video so an interruption keeps what was done. ``infer.py`` scores an ``.onnx`` file's videos
here too (:func:`score_video`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.decisions import decided_labels, finding_classes, positive_index, resolve_negative_class
from hybrid.errors import DataError
from hybrid.predictions import FRAMES_FILE, frame_rows, write_frames
from hybrid.serve.model import Model
from hybrid.serve.schema import BATCH, VideoOptions
from hybrid.video.event_files import write_events
from hybrid.video.events import Event, EventSettings, class_settings, video_events
from hybrid.video.sampling import SampledFrames


@dataclass
class VideoScores:
    """One video's sampled frames and their class scores, in time order."""

    name: str
    times: np.ndarray
    frame_indices: list[int]
    probs: np.ndarray
    problem: str | None
    seconds: float  # decoding, sampling, resizing and the model
    model_seconds: float  # the model's forward passes alone


class Findings:
    """What a model's scores mean: each image's or frame's decided label (at ``options.threshold``,
    else the model's own), and in a video the classes that make events, with their
    :class:`EventSettings`."""

    def __init__(self, model: Model, options: VideoOptions):
        card = model.card
        negative = resolve_negative_class(card.task, card.class_names, card.negative_class)
        self.model = model
        self.classes = finding_classes(card.class_names, negative)
        threshold = card.tuned_threshold if options.threshold is None else options.threshold
        self.settings = class_settings(
            card.class_names, threshold, smoothing_s=options.smoothing_s, merge_gap_s=options.merge_gap_s,
            min_duration_s=options.min_duration_s,
        )  # fmt: skip
        levels = [self.settings[name].threshold for name in card.class_names]
        self.decision = levels[self.classes[0][1]] if model.single_label else np.array(levels)
        self.positive = positive_index(card.class_names, negative)

    def labels(self, probs: np.ndarray) -> list[str]:
        """The decided label of each frame (as ``predictions.csv`` decides an image's)."""
        return decided_labels(
            probs, self.model.class_names, self.decision, single_label=self.model.single_label, positive=self.positive
        )

    def events(self, video: str, times, probs: np.ndarray) -> list[Event]:
        """Every finding class's events in one scored video, by start time."""
        return video_events(video, times, probs, self.classes, self.settings)

    @property
    def common(self) -> EventSettings:
        """The first finding class's settings (smoothing, merge gap and minimum are shared)."""
        return self.settings[self.classes[0][0]]


def score_video(model: Model, frames: SampledFrames, batch_size: int = BATCH, on_frame=None) -> VideoScores:
    """Run ``model`` over every sampled frame of one video, one batch in memory at a time;
    ``on_frame(time_s, pixels)`` sees each sampled frame at full size first (a survey reads its
    distance counter there)."""
    started, model_seconds = time.perf_counter(), 0.0
    rows, batch = [], []

    def forward() -> None:
        nonlocal model_seconds
        began = time.perf_counter()
        rows.append(model.predict(batch, batch_size=len(batch)))
        model_seconds += time.perf_counter() - began
        batch.clear()

    for _, time_s, pixels in frames.frames():
        if on_frame is not None:
            on_frame(time_s, pixels)
        batch.append(model.fit(pixels))
        if len(batch) == batch_size:
            forward()
    if batch:
        forward()
    probs = np.concatenate(rows) if rows else np.zeros((0, len(model.class_names)), np.float32)
    return VideoScores(
        frames.name, np.asarray(frames.times), list(frames.frame_indices), probs, frames.problem,
        time.perf_counter() - started, model_seconds,
    )  # fmt: skip


def serve_videos(
    model: Model, videos: list[tuple[str, Path]], out: Path, options: VideoOptions, batch_size: int, report
) -> dict:
    """Every video of ``videos`` (``(name, path)``) to ``frames.csv``, ``events.csv`` and
    ``events.json`` in ``out``. A video without a decodable frame is reported and skipped (a single
    one stops the run); one that breaks off keeps the frames before the break. ``report`` takes
    each line for the user."""
    findings = Findings(model, options)
    out.mkdir(parents=True, exist_ok=True)
    rows, events, done, failed, video_seconds = [], [], [], [], 0.0
    started = time.perf_counter()
    for name, path in videos:
        try:
            frames = SampledFrames(path, options.fps, model.card.in_channels)
            frames.name = name
            scores = score_video(model, frames, batch_size)
        except DataError as err:
            if len(videos) == 1:
                raise
            report(f"{err}; skipped")
            failed.append(str(path))
            continue
        if scores.problem:
            report(f"{path}: {scores.problem}; the frames before it are used")
        found = findings.events(name, scores.times, scores.probs)
        events += found
        done.append(name)
        rows += frame_rows(name, scores.frame_indices, scores.times, scores.probs, findings.labels(scores.probs))
        write_frames(out / FRAMES_FILE, model.class_names, rows)
        write_events(out, events, done)
        duration = float(scores.times[-1]) + 1 / options.fps if len(scores.times) else 0.0
        video_seconds += duration
        report(
            f"{name}: {len(scores.times)} frames over {duration:.1f} s, {len(found)} events; "
            f"{duration / max(scores.seconds, 1e-9):.1f}x real time"
        )
    if not done:
        raise DataError(f"{videos[0][1].parent}: none of its {len(videos)} videos could be decoded")
    return {
        "videos": len(done),
        "failed": len(failed),
        "frames": len(rows),
        "events": len(events),
        "video_seconds": video_seconds,
        "seconds": time.perf_counter() - started,
    }


def find_events(model: Model, path: str | Path, options: VideoOptions | None = None, batch_size: int = BATCH):
    """The timed events of one video file, as ``hybrid serve VIDEO`` finds them, with its scores:
    ``(events, scores)`` (:class:`~hybrid.video.events.Event` list by start time, :class:`VideoScores`);
    ``options`` None: :class:`VideoOptions`' defaults."""
    options = options or VideoOptions()
    frames = SampledFrames(Path(path), options.fps, model.card.in_channels)
    scores = score_video(model, frames, batch_size)
    return Findings(model, options).events(frames.name, scores.times, scores.probs), scores
