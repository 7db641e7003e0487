"""Inspection videos as a stream of model-ready frames, sampled by timestamp.

PyAV (FFmpeg's libraries, shipped in its wheel) decodes; frames are taken at ``fps`` per second
by their presentation time, not by counting frames, so a variable frame rate samples evenly in
time. Every frame is decoded (inter-coded frames need their references) but only sampled ones are
converted to pixels, which is where the time goes; when the next sample lies more than
:data:`SEEK_AFTER_S` ahead the demuxer seeks there instead of decoding through. Memory holds one
frame at a time, whatever the video's length.

A video that breaks off (truncated, corrupt) keeps the frames before the break and records its
last good timestamp in :attr:`VideoFrames.problem`; one without a single decodable frame raises
:class:`~hybrid.errors.DataError` naming it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset

from hybrid.data.dataset import NO_TARGET
from hybrid.errors import DataError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".mpg")
# Seek rather than decode through when the next sample is this far ahead (a keyframe is rarely
# further than 10 s back, so the seek pays only for gaps of a few seconds or more).
SEEK_AFTER_S = 4.0
# A video whose frames stop this long before its declared duration is reported as cut short.
TRUNCATION_TOLERANCE_S = 1.0


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def find_videos(path: str | Path) -> list[Path]:
    """``input`` as videos: one video file, or every video under a folder (sorted); ``[]`` when it
    holds none (images, then). A path that does not exist stops with one line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"input={path}: no such file or folder")
    if path.is_file():
        return [path] if is_video(path) else []
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and is_video(p))
    return []


def video_names(paths: list[Path]) -> list[str]:
    """The name each video goes by in the outputs: its file stem, or ``<folder>_<stem>`` where two
    videos of a folder tree share a stem (their files and events must not mix)."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}_{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def _open(path: Path):
    import av  # PyAV: imported here so image-only runs never load FFmpeg

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(f"{path}: not a readable video ({err.__class__.__name__}: {err})") from err
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: holds no video stream")
    return container


@dataclass
class VideoInfo:
    """What the container says about a video before decoding."""

    duration_s: float
    frame_rate: float
    width: int
    height: int


def probe(path: str | Path) -> VideoInfo:
    """Duration, average frame rate and frame size of ``path`` (from its headers)."""
    container = _open(Path(path))
    try:
        stream = container.streams.video[0]
        duration = _duration_s(container, stream)
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        return VideoInfo(duration, rate, stream.codec_context.width, stream.codec_context.height)
    finally:
        container.close()


def _duration_s(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return float(container.duration or 0) / 1_000_000  # AV_TIME_BASE


def sample_count(duration_s: float, fps: float) -> int:
    """How many samples ``fps`` takes from ``duration_s`` seconds: one at every ``k / fps`` before the end."""
    return max(1, math.ceil(duration_s * fps - 1e-9)) if duration_s > 0 else 0


@dataclass
class VideoFrames(IterableDataset):
    """The sampled frames of one video as model inputs: items ``{"image": uint8 [C, H, W],
    "target": -1, "index": k}`` with ``image`` through ``transform`` (the model's eval
    transform). While iterating it records each sample's ``times`` (seconds) and source
    ``frame_indices`` (after a seek: estimated from the time and the average rate), and a
    ``problem`` line when the video breaks off early. Iterate it in the main process (the
    decoder has its own threads)."""

    path: Path
    fps: float
    transform: object
    in_channels: int = 3
    times: list[float] = field(default_factory=list, init=False)
    frame_indices: list[int] = field(default_factory=list, init=False)
    problem: str | None = field(default=None, init=False)

    def __post_init__(self):
        super().__init__()
        if self.fps <= 0:
            raise DataError(f"video.fps={self.fps}: must be > 0")
        self.info = probe(self.path)
        self.name = self.path.stem

    def __len__(self) -> int:
        """The expected number of samples (fewer when the video breaks off)."""
        return sample_count(self.info.duration_s, self.fps)

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """``(source frame index, time_s, pixels H x W x C uint8)`` for each sample, in time order."""
        import av

        self.times, self.frame_indices, self.problem = [], [], None
        pixel_format = "gray" if self.in_channels == 1 else "rgb24"
        container = _open(self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-parallel decoding
        rate = self.info.frame_rate or self.fps
        target, decoded, last_good, seek_to = 0.0, -1, None, None
        try:
            while True:
                if seek_to is not None:
                    container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
                    decoded, seek_to = None, None
                reached_end = True
                for frame in container.decode(stream):
                    time_s = float(frame.time) if frame.time is not None else 0.0
                    decoded = round(time_s * rate) if decoded is None else decoded + 1
                    last_good = time_s
                    if time_s < target - 1e-6:
                        continue
                    yield decoded, time_s, frame.to_ndarray(format=pixel_format)
                    target = (math.floor(time_s * self.fps + 1e-6) + 1) / self.fps
                    if target - time_s > SEEK_AFTER_S:
                        seek_to, reached_end = target, False
                        break
                if reached_end:
                    break
        except av.error.FFmpegError as err:
            self.problem = f"decoding stopped after {last_good or 0:.2f} s ({err.__class__.__name__}: {err})"
        finally:
            container.close()
        if last_good is None:
            raise DataError(f"{self.path}: no decodable video frames (not a video, or corrupt)")
        end = self.info.duration_s
        if self.problem is None and end and last_good < end - max(TRUNCATION_TOLERANCE_S, 2 / rate):
            self.problem = f"frames end at {last_good:.2f} s of its {end:.2f} s (truncated?)"

    def __iter__(self) -> Iterator[dict]:
        for k, (index, time_s, pixels) in enumerate(self.frames()):
            self.times.append(time_s)
            self.frame_indices.append(index)
            image = torch.from_numpy(pixels)
            image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
            yield {"image": self.transform(image), "target": NO_TARGET, "index": k}


def read_frame_at(path: str | Path, time_s: float, in_channels: int = 3) -> np.ndarray:
    """The frame shown at ``time_s`` (the first at or after it; the last one past the end)."""
    import av

    container = _open(Path(path))
    try:
        stream = container.streams.video[0]
        container.seek(int(max(time_s - 0.5, 0) / stream.time_base), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time >= time_s - 1e-6:
                break
        if last is None:
            raise DataError(f"{path}: no frame at {time_s:.2f} s")
        return last.to_ndarray(format="gray" if in_channels == 1 else "rgb24")
    except av.error.FFmpegError as err:
        raise DataError(f"{path}: cannot read the frame at {time_s:.2f} s ({err})") from err
    finally:
        container.close()
