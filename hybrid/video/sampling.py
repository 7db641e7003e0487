"""Inspection videos and live sources as frames sampled by timestamp, with PyAV and numpy only: the
one sampler that the training stack's video runs (:mod:`hybrid.video.frames_dataset`) and torch-free serving
(:mod:`hybrid.serve.video_files`, ``hybrid serve``) share, so both score the same frames.

PyAV (FFmpeg's libraries, shipped in its wheel) decodes; frames are taken at ``fps`` per second
by their presentation time, not by counting frames, so a variable frame rate samples evenly in
time. Frames that others refer to are always decoded (inter-coded frames need their references);
frames that no other frame refers to are not decoded when sampling takes well under one frame in
:data:`SKIP_NONREF_RATIO` (:func:`decode_only_what_sampling_needs`: about half the decoding of a
25 fps H.264 stream sampled at 2 frames/s, a sample then landing on the next decoded frame, at most
a few frame intervals later), and only sampled frames are converted to pixels. In a file, when the next sample lies more than
:data:`SEEK_AFTER_S` ahead the demuxer seeks there instead of decoding through. Memory holds one
frame at a time, whatever the length.

A file that breaks off (truncated, corrupt) keeps the frames before the break and records its last
good timestamp in ``problem``; one without a single decodable frame raises
:class:`~hybrid.errors.DataError` naming it. Live sources (a stream URL or a V4L2 camera) are read
by :mod:`hybrid.video.live_source`, with a timeout and reconnection.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".mpg", ".ts")
# Seek rather than decode through when the next sample is this far ahead (a keyframe is rarely
# further than 10 s back, so the seek pays only for gaps of a few seconds or more).
SEEK_AFTER_S = 4.0
# A video whose frames stop this long before its declared duration is reported as cut short.
TRUNCATION_TOLERANCE_S = 1.0
# Live sources: URL schemes PyAV (FFmpeg) opens as streams, and the V4L2 camera device prefix.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "http", "https", "srt")
CAMERA_PREFIX = "/dev/video"
# Matching a frame's time to a sample's: timestamps are rationals read as floats.
TIME_EPSILON = 1e-6
# Frames no other frame refers to are left undecoded when the stream has at least this many frames
# per sample ("well below the stream's rate": a sample then moves by a frame or two at most).
SKIP_NONREF_RATIO = 4.0


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_live(source: str) -> bool:
    """Whether ``source`` is a live source: a stream URL (``udp://``, ``rtsp://``, ...) or a camera."""
    scheme, sep, _ = str(source).partition("://")
    return (bool(sep) and scheme.lower() in STREAM_SCHEMES) or str(source).startswith(CAMERA_PREFIX)


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


def open_video(source: str | Path, *, timeout_s: float | None = None, read_timeout_s: float | None = None):
    """An opened PyAV container with a video stream (a :class:`DataError` naming ``source`` when it
    cannot be opened in ``timeout_s`` seconds (``None``: no limit), or holds no video); each read
    then times out after ``read_timeout_s`` (``None``: never)."""
    import av  # imported here so image-only runs never load FFmpeg

    where = str(source)
    options = {"format": "v4l2"} if where.startswith(CAMERA_PREFIX) else {}
    try:
        container = av.open(where, timeout=(timeout_s, read_timeout_s), **options)
    except av.error.ExitError as err:  # the timeout's interrupt
        raise DataError(f"{where}: no answer within {timeout_s:g} s (is the stream playing?)") from err
    except av.error.ConnectionRefusedError as err:
        raise DataError(f"{where}: connection refused (is the sender listening?)") from err
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(f"{where}: not a readable video ({err.__class__.__name__}: {err})") from err
    if not container.streams.video:
        container.close()
        raise DataError(f"{where}: holds no video stream")
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
    container = open_video(path)
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


def next_sample_time(time_s: float, fps: float) -> float:
    """The time of the sample after one taken at ``time_s``: the next multiple of ``1 / fps``."""
    return (math.floor(time_s * fps + TIME_EPSILON) + 1) / fps


def pixel_format(in_channels: int) -> str:
    """PyAV's pixel format for a model of ``in_channels`` channels."""
    return "gray" if in_channels == 1 else "rgb24"


def decode_only_what_sampling_needs(stream, fps: float) -> bool:
    """Leave the frames no other frame refers to undecoded (FFmpeg's ``skip_frame = NONREF``) when
    ``stream`` has at least :data:`SKIP_NONREF_RATIO` frames per sample at ``fps``; whether it does.
    Decoding is where a sampled stream's time goes; the skipped frames are never shown to the model
    but the frames after them decode as before (they do not refer to skipped ones)."""
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    skip = rate >= SKIP_NONREF_RATIO * fps
    if skip:
        stream.codec_context.skip_frame = "NONREF"
    return skip


def check_fps(fps: float) -> float:
    """A sampling rate, which must be positive."""
    if fps <= 0:
        raise DataError(f"video.fps={fps}: must be > 0")
    return float(fps)


@dataclass
class SampledFrames:
    """The frames of a video file sampled at ``fps``: iterating :meth:`frames` yields ``(source
    frame index, time_s, pixels H x W x C uint8)``; it records each sample's ``times`` and
    ``frame_indices`` (after a seek: estimated from the time and the average rate) and a
    ``problem`` line when the video breaks off early."""

    path: Path
    fps: float
    in_channels: int = 3
    times: list[float] = field(default_factory=list, init=False)
    frame_indices: list[int] = field(default_factory=list, init=False)
    problem: str | None = field(default=None, init=False)

    def __post_init__(self):
        self.fps = check_fps(self.fps)
        self.path = Path(self.path)
        self.info = probe(self.path)
        self.name = self.path.stem

    def __len__(self) -> int:
        """The expected number of samples (fewer when the video breaks off)."""
        return sample_count(self.info.duration_s, self.fps)

    def frames(self) -> Iterator[tuple[int, float, object]]:
        """``(source frame index, time_s, pixels)`` for each sample, in time order."""
        import av

        self.times, self.frame_indices, self.problem = [], [], None
        container = open_video(self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-parallel decoding: a file is read as fast as it goes
        skipping = decode_only_what_sampling_needs(stream, self.fps)
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
                    # skipped frames are not counted: the index is then estimated from the time
                    decoded = round(time_s * rate) if decoded is None or skipping else decoded + 1
                    last_good = time_s
                    if time_s < target - TIME_EPSILON:
                        continue
                    self.times.append(time_s)
                    self.frame_indices.append(decoded)
                    yield decoded, time_s, frame.to_ndarray(format=pixel_format(self.in_channels))
                    target = next_sample_time(time_s, self.fps)
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


def read_frame_at(path: str | Path, time_s: float, in_channels: int = 3, *, nearby: bool = False):
    """The frame shown at ``time_s`` (the first at or after it; the last one past the end).
    ``nearby``: frames no other refers to are not decoded on the way (a photo of that moment:
    the frame may be a frame or two later, decoding from the keyframe takes half as long)."""
    import av

    container = open_video(Path(path))
    try:
        stream = container.streams.video[0]
        if nearby:
            stream.codec_context.skip_frame = "NONREF"
        container.seek(int(max(time_s - 0.5, 0) / stream.time_base), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.time is not None and frame.time >= time_s - TIME_EPSILON:
                break
        if last is None:
            raise DataError(f"{path}: no frame at {time_s:.2f} s")
        return last.to_ndarray(format=pixel_format(in_channels))
    except av.error.FFmpegError as err:
        raise DataError(f"{path}: cannot read the frame at {time_s:.2f} s ({err})") from err
    finally:
        container.close()
