"""``hybrid serve MODEL.onnx INPUT``: an exported model with the serving install alone (numpy,
Pillow, onnxruntime, PyAV). INPUT is an image or a folder of images (``predictions.csv`` as
``infer.py`` writes it, ``skipped.csv`` naming the images that could not be read), a video or a
folder of videos (``frames.csv``, ``events.csv``, ``events.json`` as ``infer.py input=VIDEO``
writes them), or a live source: a stream URL or a camera (events printed as JSON lines the moment
they close; :mod:`hybrid.serve.live`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from hybrid.errors import DataError
from hybrid.jobs.survey import add_survey_arguments, header_flags
from hybrid.predictions import FILE, SKIPPED_FILE, write_predictions, write_skipped
from hybrid.serve.live import serve_live
from hybrid.serve.model import Model
from hybrid.serve.schema import LiveSettings, ServeOptions, VideoOptions, video_options
from hybrid.serve.survey_run import make_survey, survey_video
from hybrid.serve.video_files import Findings, serve_videos
from hybrid.survey.schema import REPORT_FILE, SurveyOptions
from hybrid.util.cli import add_options, command_main, spec_from
from hybrid.util.images import IMAGE_SUFFIXES
from hybrid.video.event_files import EVENTS_FILE
from hybrid.video.sampling import find_videos, is_live, is_video, video_names

GAVE_UP = 1  # a live source that sent nothing for --give-up-s (what it sent is written)


def print_line(text: str) -> None:
    """A line for the user, on stderr (stdout carries a live source's JSON lines)."""
    print(f"hybrid serve: {text}", file=sys.stderr, flush=True)


def image_files(source: Path) -> list[tuple[str, Path]]:
    """``(name, path)`` of ``source`` (one image: its file name) or of every image under it (names
    relative to it, sorted), as ``infer.py input=`` names them."""
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{source} is not an image ({', '.join(IMAGE_SUFFIXES)}) nor a video")
        return [(source.name, source)]
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    paths = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no videos")
    return [(os.path.relpath(p, source), p) for p in paths]


def check_model_file(path: Path) -> None:
    """``hybrid serve`` takes an exported ``.onnx``; a training checkpoint gets the command that makes one."""
    if path.suffix.lower() == ".pt":
        raise DataError(
            f"{path} is a training checkpoint; export it first (in the training install): "
            f"python -m hybrid.jobs.export ckpt_path={path}, then hybrid serve <its model.onnx> ..."
        )


def parser(prog: str = "hybrid serve") -> argparse.ArgumentParser:
    """The command line of ``hybrid serve`` (``prog``: how it was started)."""
    out = argparse.ArgumentParser(
        prog=prog,
        description="Predict with an exported .onnx (hybrid export), without the training stack.",
    )
    out.add_argument("model", help="the exported model file (model.onnx)")
    out.add_argument(
        "input",
        help="an image or a folder of images (searched recursively); a video or a folder of videos; or a live "
        "source: a stream URL (udp://, tcp://, rtsp://, http(s)://) or a camera (/dev/video0)",
    )
    add_options(out, ServeOptions)
    video = out.add_argument_group("videos and live sources (infer.py's video.* keys, same defaults)")
    add_options(video, VideoOptions, exclude=("threshold",))  # --threshold above serves images too
    live = out.add_argument_group("live sources (reopened when they end or stall; Ctrl-C or SIGTERM ends the run)")
    add_options(live, LiveSettings)
    live.add_argument("--frames", action="store_true", help="print a JSON line per sampled frame too")
    out.add_argument(
        "--survey", action="store_true",
        help="keep a draft inspection survey of a live source or one video (as hybrid survey; the flags below)",
    )  # fmt: skip
    add_survey_arguments(out)
    return out


def serve_images(model: Model, files: list[tuple[str, Path]], out: Path, options: VideoOptions, batch: int) -> dict:
    """Predict ``files`` in batches, write ``predictions.csv`` (and ``skipped.csv``) into ``out``;
    each image decided as a video frame is (``options.threshold``, else the model's)."""
    started = time.perf_counter()
    kept, probs, failed = model.predict_files([path for _, path in files], batch_size=batch)
    names = [files[i][0] for i in kept]
    skipped = {files[i][0]: "unreadable" for i in failed}
    for err in failed.values():
        print_line(f"{err}; skipped")
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / FILE, names, probs, model.class_names, Findings(model, options).labels(probs))
    if skipped:
        write_skipped(out / SKIPPED_FILE, skipped)
    return {"images": len(names), "skipped": len(skipped), "seconds": time.perf_counter() - started}


def run(args: argparse.Namespace) -> int:
    """Serve ``args.input`` as what it is; the exit code."""
    serving = spec_from(ServeOptions, vars(args))
    model_path, out, source = Path(args.model).expanduser(), Path(serving.out).expanduser(), str(args.input)
    check_model_file(model_path)
    options = video_options(vars(args))
    live = is_live(source) or (args.realtime and is_video(source))
    settings = spec_from(LiveSettings, vars(args))
    videos = [] if live else find_videos(source)
    files = [] if live or videos else image_files(Path(source).expanduser())
    model = Model(model_path, runtime=serving.runtime, threads=serving.threads, paced=live)
    survey = (
        make_survey(
            spec_from(SurveyOptions, vars(args)),
            header_flags(args),
            model,
            model_path.name,
            print_line,
        )
        if args.survey
        else None
    )
    if live:
        done = serve_live(
            model, source, out, options, settings, show_frames=args.frames, report=print_line, survey=survey
        )
        return GAVE_UP if done["stalled"] else 0
    if survey is not None:
        if len(videos) != 1:
            raise DataError(f"--survey takes one video (a pipe section) or a live source; {source} is not one video")
        done = survey_video(model, videos[0], out, options, survey, print_line, serving.batch)
        print_line(f"{videos[0].name}: {done['observations']} observations; {out / REPORT_FILE}")
        return 0
    if videos:
        named = list(zip(video_names(videos), videos, strict=True))
        done = serve_videos(model, named, out, options, serving.batch, report=print_line)
        print_line(
            f"{done['videos']} videos, {done['video_seconds']:.1f} s of video in {done['seconds']:.1f} s with "
            f"{model.session.description}; {done['events']} events in {out / EVENTS_FILE}"
        )
        return 0
    done = serve_images(model, files, out, options, serving.batch)
    print_line(
        f"{done['images']} images in {done['seconds']:.2f} s with {model.session.description}; "
        f"{done['skipped']} skipped; predictions in {out / FILE}"
    )
    return 0


def main(argv: list[str] | None = None, prog: str = "hybrid serve") -> int:
    """Run ``hybrid serve``; a mistake (a missing file, a foreign model) ends in one line and exit code 2."""
    return command_main(parser(prog), run, print_line, argv)


if __name__ == "__main__":
    sys.exit(main())
