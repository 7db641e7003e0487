"""``infer.py input=VIDEO``: an inspection video (or a folder of them) to a timed list of defects.

Frames sampled at ``video.fps`` by timestamp go through the served model in batches (memory holds
one batch, whatever the length); each class's score curve becomes events (:mod:`hybrid.video.events`).
Files, rewritten after every video so an interruption keeps what was done: ``frames.csv``,
``events.csv``, ``events.json`` (CCTV-Pipe results format, for ``python -m hybrid.jobs.evaluate_video``),
and per video ``<video>/timeline.png`` and ``<video>/keyframes.png``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import make_loader
from hybrid.data.schema import DataSchema
from hybrid.data.synthetic.pipe_videos import DEFECT_TRUTH_FILE, SEGMENTS_FILE, TRUTH_FILE
from hybrid.deploy.serving import ServedModel
from hybrid.engine.evaluation import predicted_labels
from hybrid.engine.loop import predict
from hybrid.engine.outputs import save_figure, write_json
from hybrid.engine.video_outputs import TimelineTruth, timeline_figure
from hybrid.errors import ConfigError, DataError
from hybrid.inference.served_run import InferRun
from hybrid.models.schema import model_tag
from hybrid.predictions import FRAMES_FILE, frame_rows, write_frames
from hybrid.serve.schema import VideoOptions
from hybrid.serve.survey_run import (
    DISTANCE_COLUMNS,
    check_distances,
    counter_of,
    frames_with_distances,
    make_survey,
    settle_distances,
    write_survey,
)
from hybrid.serve.video_files import VideoScores
from hybrid.serve.video_files import score_video as serve_video_scores
from hybrid.survey.schema import SurveyOptions
from hybrid.tracking import build_tracker, tracked
from hybrid.tracking.base import Tracker
from hybrid.tracking.keyframes import attention_grids, write_keyframes
from hybrid.video.event_files import EVENT_COLUMNS, read_truth, write_events
from hybrid.video.events import Event, EventSettings, class_settings, video_events
from hybrid.video.frames_dataset import VideoFrames
from hybrid.video.sampling import SampledFrames, read_frame_at, video_names

log = logging.getLogger(__name__)


def event_settings(video: VideoOptions, served: ServedModel, spec: LabelSpec) -> dict[str, EventSettings]:
    """``video.*`` per class; the threshold defaults to the checkpoint's (tuned, one or per class;
    else 0.5)."""
    threshold = video.threshold if video.threshold is not None else served.tuned_threshold
    return class_settings(
        spec.class_names, threshold, smoothing_s=video.smoothing_s, merge_gap_s=video.merge_gap_s,
        min_duration_s=video.min_duration_s,
    )  # fmt: skip


def _matching(rows: list[tuple], labels: set[str]) -> list[tuple]:
    """The rows whose label (first item) is one of ``labels`` (any case); all rows when none is (a
    binary model's one class against the codes of a multi-label truth)."""
    kept = [row for row in rows if str(row[0]).lower() in labels]
    return kept or rows


def _same_video(name: str, video: Path) -> bool:
    """Whether a truth file's ``name`` for a video means ``video``: its stem (as the outputs name
    it) or its file name (``pipe.mp4``, as people write it)."""
    return str(name) in (video.stem, video.name)


def _unmatched(path: Path, names: set[str], video: Path) -> None:
    """Say in one line that ``path`` holds truth but none for ``video`` (never ignored silently)."""
    if names:
        shown = ", ".join(sorted(map(str, names))[:5]) + (", ..." if len(names) > 5 else "")
        log.warning("%s: no entry for %s (it names %s); the timeline shows no truth from it", path, video.name, shown)


def _moments(path: Path, video: Path) -> list[tuple[str, float]]:
    """``(label, moment)`` of ``video`` in the CCTV-Pipe truth file ``path`` (none when it is absent
    or unreadable, or names other videos only: a warning names it)."""
    if not path.is_file():
        return []
    try:
        rows = read_truth(path)
    except DataError as err:
        log.warning("%s; the timeline shows no truth from it", err)
        return []
    kept = [(label, moment) for where, label, moment in rows if _same_video(where, video)]
    if not kept:
        _unmatched(path, {where for where, _, _ in rows}, video)
    return kept


def _segments(path: Path, video: Path) -> list[tuple[str, float, float]]:
    """``(label, start_s, end_s)`` of ``video`` in a ``segments.csv`` (none when absent or
    unreadable, or naming other videos only: a warning names it)."""
    if not path.is_file():
        return []
    try:
        frame = pd.read_csv(path)
        mine = frame[frame.video.astype(str).isin([video.stem, video.name])]
        kept = [(str(r.label), float(r.start_s), float(r.end_s)) for r in mine.itertuples()]
    except (ValueError, AttributeError, pd.errors.ParserError) as err:
        log.warning("%s: not a segments table (%s); the timeline shows no segments", path, err)
        return []
    if not kept:
        _unmatched(path, set(frame.video.astype(str)), video)
    return kept


def truth_beside(video: Path, labels: list[str]) -> TimelineTruth | None:
    """What a ground truth beside ``video`` says is in it, for its timeline: the annotated moments
    of ``truth.json`` (CCTV-Pipe format), or of ``truth_defect.json`` where its labels are the
    model's (a binary model), and the segments of ``segments.csv`` (both written by
    ``hybrid.data.synthetic.pipe_videos``). The timeline is a picture, not a score: bad files are skipped."""
    wanted = {label.lower() for label in labels}
    found = [(name, _moments(video.parent / name, video)) for name in (TRUTH_FILE, DEFECT_TRUTH_FILE)]
    found = [(name, rows) for name, rows in found if rows]
    segments = _segments(video.parent / SEGMENTS_FILE, video)
    if not found and not segments:
        return None
    matched = [(name, rows) for name, rows in found if any(label.lower() in wanted for label, _ in rows)]
    name, rows = (matched or found or [(SEGMENTS_FILE, [])])[0]
    return TimelineTruth(name, _matching(rows, wanted), _matching(segments, wanted))


def score_video(
    path: Path, name: str, served: ServedModel, data: DataSchema, spec: LabelSpec, fps: float, *, progress: bool,
    on_frame=None,
):  # fmt: skip
    """Run the model over every sampled frame of one video, one batch in memory at a time: an
    ``.onnx`` file through the serving code (:func:`hybrid.serve.video_files.score_video`), a checkpoint
    through the engine's prediction loop; ``on_frame(time_s, pixels)`` sees every sampled frame
    (a survey's counter; for a checkpoint, in a pass of its own over the same samples)."""
    if served.serving is not None:
        frames = SampledFrames(path, fps, int(data.in_channels))
        frames.name = name
        return serve_video_scores(served.serving, frames, int(data.batch_size), on_frame=on_frame)
    if on_frame is not None:
        for _, time_s, pixels in SampledFrames(path, fps, 3).frames():
            on_frame(time_s, pixels)
    frames = VideoFrames(path, fps, served.eval_transform(data), int(data.in_channels))
    runtime = served.runtime
    in_order = replace(data, num_workers=0)  # the decoder has its own threads; frames stream from it in order
    loader = make_loader(
        frames, in_order, train=False, seed=0, device=runtime.device, channels_last=runtime.channels_last
    )
    started = time.perf_counter()
    preds = predict(served.model, loader, spec, runtime, desc=name, progress=progress)
    order = np.argsort(preds.indices)
    return VideoScores(
        name, np.asarray(frames.times), frames.frame_indices, preds.probs[order], frames.problem,
        time.perf_counter() - started, preds.forward_seconds,
    )  # fmt: skip


def keyframes(video: Path, events: list[Event], served: ServedModel, data: DataSchema, out: Path) -> None:
    """``keyframes.png``: the peak frame of every event, re-read from the video (never held)."""
    if not events:
        return
    in_channels = int(data.in_channels)
    frames = [read_frame_at(video, e.peak_s, in_channels) for e in events]
    captions = [f"{e.label} {e.start_s:.1f}-{e.end_s:.1f} s, {e.peak_score:.2f} at {e.peak_s:.1f} s" for e in events]
    grids = attention_grids(served.model, frames, data, served.runtime)
    write_keyframes(out, frames, captions, grids)


def infer_videos(
    options: VideoOptions, served: ServedModel, data: DataSchema, spec: LabelSpec, videos: list[Path], run_dir: Path,
    tracker: Tracker, *, source: str, progress: bool, survey: SurveyOptions | None = None,
) -> dict:  # fmt: skip
    """Every video of ``source`` (``input``) to frames, events and plots in ``run_dir``, sampled and
    made events as ``options`` (``video.*``) say; returns the run's ``video/*`` figures.

    A video that breaks off keeps its frames up to the break (a warning names it and the last good
    time); one with no decodable frame stops a single-video run with one line, and is skipped (an
    error line) in a folder so the others go on. ``survey`` (``survey.*``): each video's draft
    survey too, through :mod:`hybrid.serve.survey_run` (as ``hybrid survey`` writes it)."""
    settings = event_settings(options, served, spec)
    classes = spec.event_classes  # every class but the negative one: Defect (binary), every code (multilabel)
    thresholds = {label: settings[label].threshold for label, _ in classes}
    common = settings[classes[0][0]]
    shown = sorted({f"{t:.2f}" for t in thresholds.values()})
    log.info(
        "videos: %d; sampling %g frames/s; events of %s at score >= %s (smoothing %g s, merge %g s, min %g s)",
        len(videos), options.fps, ", ".join(name for name, _ in classes[:6]) + ("..." if len(classes) > 6 else ""),
        shown[0] if len(shown) == 1 else "per-class thresholds", common.smoothing_s, common.merge_gap_s,
        common.min_duration_s,
    )  # fmt: skip
    decision = common.threshold if spec.single_label else np.array([settings[c].threshold for c in spec.class_names])
    drafting = make_survey(survey, {}, served.serving, served.description, log.warning) if survey else None
    if drafting and served.serving is None:
        log.info("clock positions left empty: measured per exported model (bench/survey_clock.py --stamp MODEL.onnx)")
    extra_columns = DISTANCE_COLUMNS if drafting else ()
    tables, events, done, failed = [], [], [], []
    video_seconds, scoring_seconds, model_seconds = 0.0, 0.0, 0.0
    started = time.perf_counter()
    for path, name in zip(videos, video_names(videos), strict=True):
        counter = counter_of(drafting, path) if drafting else None
        try:
            scores = score_video(path, name, served, data, spec, options.fps, progress=progress, on_frame=counter)
        except DataError as err:
            if len(videos) == 1:
                raise
            log.error("%s; skipped", err)
            failed.append(str(path))
            continue
        if scores.problem:
            log.warning("%s: %s; the frames before it are used", path, scores.problem)
        found = video_events(scores.name, scores.times, scores.probs, classes, settings)
        events += found
        done.append(scores.name)
        predicted = predicted_labels(scores.probs, spec, decision)
        rows = frame_rows(scores.name, scores.frame_indices, scores.times, scores.probs, predicted)
        if drafting:
            distances, photos = settle_distances(
                drafting, path, scores.name, scores.times, found, counter, log.info, int(data.in_channels)
            )
            rows = frames_with_distances(rows, distances)
        tables += rows
        write_frames(run_dir / FRAMES_FILE, spec.class_names, tables, extra_columns)
        write_events(run_dir, events, done)
        if drafting:
            check_distances(path, distances, counter)
            write_survey(drafting, run_dir, scores.name, found, distances, photos, path, counter.text_boxes)
        folder = run_dir / scores.name
        folder.mkdir(parents=True, exist_ok=True)
        curves = {label: scores.probs[:, column] for label, column in classes}
        truth = truth_beside(path, [label for label, _ in classes])
        figure = timeline_figure(scores.name, scores.times, curves, found, thresholds, truth=truth)
        timeline = save_figure(figure, folder / "timeline.png", dpi=100)
        keyframes(path, found, served, data, folder / "keyframes.png")
        tracker.log_image(f"video/{scores.name}/timeline", timeline)
        duration = float(scores.times[-1]) + 1 / options.fps if len(scores.times) else 0.0
        video_seconds += duration
        scoring_seconds += scores.seconds
        model_seconds += scores.model_seconds
        log.info(
            "%s: %d frames over %.1f s, %d events; %.1fx real time",
            scores.name, len(scores.times), duration, len(found), duration / max(scores.seconds, 1e-9),
        )  # fmt: skip
    if not done:
        raise DataError(f"input={source}: none of its {len(videos)} videos could be decoded")
    tracker.log_table("video/events", EVENT_COLUMNS, [[e.row()[c] for c in EVENT_COLUMNS] for e in events])
    wall = time.perf_counter() - started
    metrics = {
        "video/num_videos": len(done),
        "video/failed_videos": len(failed),
        "video/num_frames": len(tables),
        "video/num_events": len(events),
        "video/seconds": video_seconds,
        "video/wall_seconds": wall,
        # video time over the whole run's time (plots and keyframes included) ...
        "video/realtime_factor": video_seconds / max(wall, 1e-9),
        # ... and over decoding plus the model alone; the model's share of that time
        "video/scoring_realtime_factor": video_seconds / max(scoring_seconds, 1e-9),
        "video/model_seconds": model_seconds,
        "video/input_seconds": scoring_seconds - model_seconds,  # decoding, sampling, resizing
    }
    write_json(run_dir / "metrics.json", metrics)
    tracker.log_summary(metrics)
    log.info(
        "%d videos, %.1f s of video in %.1f s: %.1fx real time (the model %.1f s, decoding and resizing %.1f s); "
        "%d events in %s (events.json for hybrid.jobs.evaluate_video)",
        len(done), video_seconds, wall, metrics["video/realtime_factor"], model_seconds,
        metrics["video/input_seconds"], len(events), run_dir / "events.csv",
    )  # fmt: skip
    return metrics


def predict_videos(run: InferRun) -> dict:
    """``input=VIDEO`` (or a folder of videos): timed defect events of every video."""
    cfg, job, served, data_cfg, videos, run_dir = run.cfg, run.job, run.served, run.data, run.videos, run.run_dir
    if job.binary_ckpt_path:
        raise ConfigError("binary_ckpt_path (two-stage inference) applies to images, not to input=VIDEO")
    spec = served.label_spec(data_cfg)
    tags = [spec.task, "video", model_tag(served.trained.model)]
    with tracked(build_tracker(cfg, run_dir, "infer", tags)) as tracker:
        return infer_videos(
            job.video,
            served,
            data_cfg,
            spec,
            videos,
            run_dir,
            tracker,
            source=str(job.input),
            progress=job.progress_bar,
            survey=job.survey if job.survey.enabled else None,
        )
