"""Synthetic inspection videos with known defect segments: ``hybrid synthetic-video out=DIR``.

A video is a camera crawling through one synthetic pipe (:mod:`hybrid.data.synthetic`'s look):
the same pipe throughout, the view slowly closing in (joints widen and pass out of the frame),
with defects that come into view, stay for a few seconds and leave (cross-fades between scenes).
Between defects the pipe is normal. Written beside the videos:

- ``truth.json``: the CCTV-Pipe ground-truth format, ``{"database": {video: {"annotations":
  [{"label": code, "moment": s}]}}}``, one annotation per code and defect, at the middle of the
  defect's time on screen;
- ``truth_defect.json``: the same with the label ``Defect`` (one per defect), for binary models;
- ``segments.csv``: ``video, label, start_s, end_s`` of every code on screen;
- with ``overlay=true`` (the default), a CCTV-style text overlay: the crawler's distance counter
  (top left, ``12.34 m``), the section and the date (bottom). The crawler moves at ``speed_m_s``,
  stops at each point defect (the operator looking at it), drives through continuous defects
  (``continuous_share`` of the defects, ``continuous_s`` long: more than 1 m of pipe) and, with
  ``reversal=true``, backs up once in a normal stretch. Its truth: ``<video>.telemetry.csv``
  (``time_s,distance_m`` at every change of speed: the distance at any time, interpolated) and
  ``survey_truth.csv`` (``video, label, start_s, end_s, start_m, end_m, distance_m, continuous,
  clock``: each code on screen with its distances, ``distance_m`` where a point defect stands, and
  the clock position where a lone defect was painted).

Each video depends only on (seed, video index). ``vfr=true`` writes a variable frame rate;
``hybrid synthetic-video --help`` lists every key.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from hybrid.data.synthetic import SyntheticSpec, render_image, sample_labels
from hybrid.util.atomic import atomic_write, atomic_write_text
from hybrid.util.cli import option
from hybrid.util.clock import mask_clock

TRUTH_FILE, DEFECT_TRUTH_FILE, SEGMENTS_FILE = "truth.json", "truth_defect.json", "segments.csv"
SURVEY_TRUTH_FILE, TELEMETRY_SUFFIX = "survey_truth.csv", ".telemetry.csv"
# A pixel of a defective still that differs from the normal one by more than this (of 255) is the
# defect's; a deformation changes the whole pipe, so it has no clock position.
PAINTED_LEVEL, WHOLE_PIPE_CODES = 24, ("DE",)
# The overlay's text height as a share of the frame height (30 px at 720p), and its colours.
OVERLAY_TEXT_SHARE = 1 / 24
OVERLAY_INK, OVERLAY_BOX = (255, 255, 255), (0, 0, 0)
# How far the view closes in over one scene (a zoom about the pipe's vanishing point).
ZOOM_PER_SCENE = 0.22
# Scenes blend into each other over this long.
CROSSFADE_S = 0.4
MILLISECOND = Fraction(1, 1000)


@dataclass
class VideoSpec:
    """What the synthetic videos are made of."""

    videos: int = option(2, "videos to write (pipe_001.mp4, ...)")
    duration_s: float = option(60.0, "length of each video in seconds")
    fps: float = option(25.0, "frames per second (the mean rate with vfr=true)")
    width: int = option(640, "frame width in pixels")
    height: int = option(480, "frame height in pixels")
    seed: int = option(0, "each video depends only on this and its index")
    defect_s: tuple[float, float] = option((3.0, 7.0), "shortest and longest time a defect stays in view, s")
    normal_s: tuple[float, float] = option((3.0, 8.0), "shortest and longest normal stretch between defects, s")
    vfr: bool = option(False, "write a variable frame rate (frames alternately faster and slower than 1/fps)")
    overlay: bool = option(True, "draw the distance counter, section and date on the frames (overlay=false: none)")
    speed_m_s: float = option(0.2, "the crawler's speed between stops, metres per second")
    continuous_share: float = option(0.3, "share of defects the crawler drives through (continuous ones)")
    continuous_s: tuple[float, float] = option(
        (8.0, 14.0), "shortest and longest time a continuous defect stays in view, s"
    )
    reversal: bool = option(False, "the crawler backs up once, in the first long normal stretch after 8 s")
    section: str = option("S-001", "the section id the overlay shows")
    date: str = option("2026-12-07", "the date the overlay shows")


@dataclass
class Scene:
    """A stretch of the video showing one still: the pipe, with ``codes`` or none."""

    start_s: float
    end_s: float
    codes: list[str]
    pixels: np.ndarray
    continuous: bool = False  # the crawler drives through it (else it stops there)
    clock: int | None = None  # where its one defect was painted (None: several codes, or a deformation)


def plan_scenes(spec: VideoSpec, index: int) -> list[Scene]:
    """The scenes of video ``index``: normal and defective in turn, starting and ending normal."""
    rng = np.random.default_rng([spec.seed, index, 0])
    crawler = np.random.default_rng([spec.seed, index, 1])  # its own stream: the scenes stay as they were
    # Stills at the image dataset's own size (its defects' sizes are in its pixels), enlarged to the video's.
    image_spec = SyntheticSpec(min_contrast=0.75)
    look = int(rng.integers(2**31))
    water = int(rng.choice([0, 0, 5, 10, 15]))
    scenes, t, defective = [], 0.0, False
    while t < spec.duration_s:
        low, high = spec.defect_s if defective else spec.normal_s
        end = min(t + rng.uniform(low, high), spec.duration_s)
        codes = sample_labels(rng, defect_rate=1.0)[0] if defective else []
        continuous = defective and crawler.random() < spec.continuous_share
        if continuous:
            end = min(t + crawler.uniform(*spec.continuous_s), spec.duration_s)
        if defective and spec.duration_s - end < spec.normal_s[0]:
            codes, continuous = [], False  # the video ends on a normal stretch, so every defect leaves the view
        pixels = render_image(
            np.random.default_rng(look), codes, water, image_spec, np.random.default_rng(rng.integers(2**31))
        )
        scenes.append(Scene(t, end, codes, pixels, continuous, painted_clock(pixels, codes, look, water, image_spec)))
        t, defective = end, not defective
    return scenes


def painted_clock(pixels: np.ndarray, codes: list[str], look: int, water: int, image_spec: SyntheticSpec) -> int | None:
    """Where one painted defect is, as a clock position: the centroid of what differs from the same
    pipe drawn without it. None for several codes (their places mix) and for a deformation (the
    whole pipe changes shape)."""
    if len(codes) != 1 or codes[0] in WHOLE_PIPE_CODES:
        return None
    normal = render_image(np.random.default_rng(look), [], water, image_spec, np.random.default_rng(0))
    changed = np.abs(pixels.astype(np.int16) - normal.astype(np.int16)).max(axis=-1) > PAINTED_LEVEL
    return mask_clock(changed)


def frame_times(spec: VideoSpec) -> np.ndarray:
    """Presentation times: every ``1 / fps``, or with ``vfr`` alternately faster and slower."""
    if not spec.vfr:
        return np.arange(0, spec.duration_s, 1 / spec.fps)
    steps = np.tile([0.6 / spec.fps, 1.4 / spec.fps, 1.0 / spec.fps], math.ceil(spec.duration_s * spec.fps))
    times = np.concatenate([[0.0], np.cumsum(steps)])
    return times[times < spec.duration_s]


def crawler_track(spec: VideoSpec, scenes: list[Scene]) -> tuple[np.ndarray, np.ndarray]:
    """Where the crawler is: ``(times, metres)`` at every change of speed, linear in between. It
    moves at ``speed_m_s`` through normal stretches and continuous defects, stands at point
    defects, and with ``reversal`` backs up for the middle fifth of the first normal stretch of at
    least 4 s starting after 8 s."""
    times, metres = [0.0], [0.0]

    def drive(until_s: float, speed: float) -> None:
        metres.append(metres[-1] + speed * (until_s - times[-1]))
        times.append(until_s)

    reversed_once = not spec.reversal
    for scene in scenes:
        stands = bool(scene.codes) and not scene.continuous
        if not scene.codes and not reversed_once and scene.start_s >= 8.0 and scene.end_s - scene.start_s >= 4.0:
            span = scene.end_s - scene.start_s
            drive(scene.start_s + 0.4 * span, spec.speed_m_s)
            drive(scene.start_s + 0.6 * span, -spec.speed_m_s)
            reversed_once = True
        drive(scene.end_s, 0.0 if stands else spec.speed_m_s)
    return np.array(times), np.array(metres)


def draw_overlay(frame: np.ndarray, spec: VideoSpec, metres: float) -> np.ndarray:
    """``frame`` with the counter (top left, on a dark box, as crawler cameras burn it in), the
    section and the date (bottom)."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    size = max(int(spec.height * OVERLAY_TEXT_SHARE), 8)
    font = ImageFont.load_default(size=size)
    margin = size // 2
    counter = f"{metres:7.2f} m"
    box = draw.textbbox((margin * 2, margin * 2), counter, font=font)
    draw.rectangle((box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), fill=OVERLAY_BOX)
    draw.text((margin * 2, margin * 2), counter, font=font, fill=OVERLAY_INK)
    draw.text((margin * 2, spec.height - size - margin * 2), spec.section, font=font, fill=OVERLAY_INK)
    right = draw.textbbox((0, 0), spec.date, font=font)[2]
    draw.text(
        (spec.width - right - margin * 2, spec.height - size - margin * 2), spec.date, font=font, fill=OVERLAY_INK
    )
    return np.asarray(image)


def _zoomed(pixels: np.ndarray, factor: float, size: tuple[int, int]) -> np.ndarray:
    """The centre of ``pixels`` enlarged by ``factor`` (the camera moved forward), at ``size`` (width, height)."""
    height, width = pixels.shape[:2]
    crop_w, crop_h = width / factor, height / factor
    box = ((width - crop_w) / 2, (height - crop_h) / 2, (width + crop_w) / 2, (height + crop_h) / 2)
    return np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR, box=box))


def render_frame(scenes: list[Scene], time_s: float, size: tuple[int, int]) -> np.ndarray:
    """The frame at ``time_s`` of ``size`` (width, height): the current scene's still, zoomed by its
    progress, cross-faded into the next scene around their boundary."""
    current = next(i for i, s in enumerate(scenes) if time_s < s.end_s or i == len(scenes) - 1)

    def view(i: int) -> np.ndarray:
        scene = scenes[i]
        progress = np.clip((time_s - scene.start_s) / max(scene.end_s - scene.start_s, 1e-6), 0, 1)
        return _zoomed(scene.pixels, 1 + ZOOM_PER_SCENE * progress, size).astype(np.float32)

    frame = view(current)
    for neighbour, boundary in ((current - 1, scenes[current].start_s), (current + 1, scenes[current].end_s)):
        if 0 <= neighbour < len(scenes) and abs(time_s - boundary) < CROSSFADE_S / 2:
            weight = 0.5 - abs(time_s - boundary) / CROSSFADE_S  # 0.5 at the boundary, 0 at the fade's edge
            frame = (1 - weight) * frame + weight * view(neighbour)
    return frame.round().astype(np.uint8)


def write_video(path: Path, spec: VideoSpec, scenes: list[Scene]) -> None:
    """Encode the scenes as H.264 in ``path`` (MP4 with its index first, as streaming recorders
    write), with the overlay when ``spec.overlay``."""
    import av

    track_t, track_m = crawler_track(spec, scenes)

    def picture(time_s: float) -> np.ndarray:
        frame = render_frame(scenes, time_s, (spec.width, spec.height))
        return draw_overlay(frame, spec, float(np.interp(time_s, track_t, track_m))) if spec.overlay else frame

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as container:
            stream = container.add_stream("libx264", rate=round(spec.fps))
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
            stream.codec_context.time_base = stream.time_base = MILLISECOND  # exact pts for a variable rate
            stream.options = {"preset": "veryfast", "crf": "20"}
            for time_s in frame_times(spec):
                frame = av.VideoFrame.from_ndarray(picture(float(time_s)), format="rgb24")
                frame.pts, frame.time_base = round(time_s * 1000), MILLISECOND
                container.mux(stream.encode(frame))
            container.mux(stream.encode())

    atomic_write(path, encode)


def truth_of(name: str, scenes: list[Scene]) -> tuple[list[dict], list[dict]]:
    """Per-code segments and CCTV-Pipe annotations of one video (moment: the segment's middle)."""
    segments = [
        {"video": name, "label": code, "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3)}
        for s in scenes
        for code in s.codes
    ]
    annotations = [{"label": row["label"], "moment": round((row["start_s"] + row["end_s"]) / 2, 3)} for row in segments]
    return segments, annotations


def survey_truth_of(name: str, spec: VideoSpec, scenes: list[Scene]) -> list[dict]:
    """Each code on screen with where it is along the pipe: ``start_m``, ``end_m`` (the crawler's
    distance when it came into and left the view) and ``distance_m`` (where the crawler stood, for
    a point defect; the middle, for a continuous one)."""
    times, metres = crawler_track(spec, scenes)
    rows = []
    for scene in (s for s in scenes if s.codes):
        start_m, end_m = (float(np.interp(t, times, metres)) for t in (scene.start_s, scene.end_s))
        middle = float(np.interp((scene.start_s + scene.end_s) / 2, times, metres))
        rows += [
            {
                "video": name,
                "label": code,
                "start_s": round(scene.start_s, 3),
                "end_s": round(scene.end_s, 3),
                "start_m": round(start_m, 3),
                "end_m": round(end_m, 3),
                "distance_m": round(middle, 3),
                "continuous": scene.continuous,
                "clock": scene.clock if scene.clock is not None else "",
            }
            for code in scene.codes
        ]
    return rows


def write_telemetry(path: Path, spec: VideoSpec, scenes: list[Scene]) -> None:
    """``time_s,distance_m`` of the crawler at every change of speed (what ``--telemetry`` reads)."""
    times, metres = crawler_track(spec, scenes)
    lines = ["time_s,distance_m"] + [f"{t:.3f},{m:.4f}" for t, m in zip(times, metres, strict=True)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def generate(out: str | Path, spec: VideoSpec) -> Path:
    """Write ``spec.videos`` videos and their truth into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    segments, truth, defect_truth, survey = [], {}, {}, []
    for index in range(spec.videos):
        name = f"pipe_{index + 1:03d}"
        scenes = plan_scenes(spec, index)
        write_video(out / f"{name}.mp4", spec, scenes)
        write_telemetry(out / f"{name}{TELEMETRY_SUFFIX}", spec, scenes)
        survey += survey_truth_of(name, spec, scenes)
        rows, annotations = truth_of(name, scenes)
        segments += rows
        truth[name] = {"annotations": annotations, "duration": spec.duration_s}
        defect_truth[name] = {
            "annotations": [
                {"label": "Defect", "moment": round((s.start_s + s.end_s) / 2, 3)} for s in scenes if s.codes
            ],
            "duration": spec.duration_s,
        }
    atomic_write_text(out / TRUTH_FILE, json.dumps({"database": truth}, indent=1) + "\n")
    atomic_write_text(out / DEFECT_TRUTH_FILE, json.dumps({"database": defect_truth}, indent=1) + "\n")
    frame = pd.DataFrame(segments, columns=["video", "label", "start_s", "end_s"])
    atomic_write(out / SEGMENTS_FILE, lambda tmp: frame.to_csv(tmp, index=False))
    survey_frame = pd.DataFrame(
        survey, columns=[*frame.columns, "start_m", "end_m", "distance_m", "continuous", "clock"]
    )
    atomic_write(out / SURVEY_TRUTH_FILE, lambda tmp: survey_frame.to_csv(tmp, index=False))
    atomic_write_text(out / "synthetic_video.json", json.dumps(asdict(spec), indent=2) + "\n")
    return out
