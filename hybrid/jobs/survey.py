"""``hybrid survey MODEL.onnx VIDEO --out DIR``: a draft inspection survey of one video (the flags,
and their checks; the work is :mod:`hybrid.serve.survey_run`'s). ``hybrid survey --list-codes`` prints
the code map."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from hybrid.errors import DataError
from hybrid.serve.model import Model
from hybrid.serve.schema import ServeOptions, VideoOptions, video_options
from hybrid.serve.survey_run import make_survey, survey_video
from hybrid.survey.codes import code_table
from hybrid.survey.header import SurveyHeader
from hybrid.survey.schema import REPORT_FILE, SurveyOptions
from hybrid.util.cli import add_options, command_main, spec_from


def print_line(text: str) -> None:
    """A line for the user, on stderr."""
    print(f"hybrid survey: {text}", file=sys.stderr, flush=True)


def add_survey_arguments(parser: argparse.ArgumentParser) -> None:
    """The header flags and :class:`SurveyOptions` (``hybrid survey``'s, and ``hybrid serve --survey``'s)."""
    head = parser.add_argument_group("the survey header (or --header FILE.yaml; a flag given too wins)")
    for spec_field in fields(SurveyHeader):
        head.add_argument(f"--{spec_field.name.replace('_', '-')}", default=None, help=spec_field.metadata["help"])
    add_options(parser.add_argument_group("the survey's distances and codes"), SurveyOptions)


def parser(prog: str = "hybrid survey") -> argparse.ArgumentParser:
    """The command line of ``hybrid survey`` (``prog``: how it was started)."""
    out = argparse.ArgumentParser(
        prog=prog,
        description="A draft inspection survey (observations at metres along the pipe, in EN 13508-2 or PACP "
        "codes, for an inspector to review) from one video and an exported .onnx model.",
    )
    out.add_argument("model", nargs="?", help="the exported model file (model.onnx)")
    out.add_argument("video", nargs="?", help="the inspection video of one pipe section")
    out.add_argument(
        "--list-codes", action="store_true", help="print the code map (of --standard, or --codes) and exit"
    )
    add_survey_arguments(out)
    model = out.add_argument_group("the model and its events (as hybrid serve's)")
    add_options(model, ServeOptions)
    add_options(model, VideoOptions, exclude=("threshold",))  # --threshold: ServeOptions'

    return out


def header_flags(args: argparse.Namespace) -> dict:
    """The header fields given as flags."""
    return {f.name: getattr(args, f.name) for f in fields(SurveyHeader)}


def run(args: argparse.Namespace) -> int:
    """``hybrid survey`` with parsed ``args``; the exit code."""
    options = spec_from(SurveyOptions, vars(args))
    if args.list_codes:
        print(code_table(options.standard, options.codes or None))
        return 0
    if not args.model or not args.video:
        raise DataError("give MODEL.onnx and VIDEO (or --list-codes)")
    serving = spec_from(ServeOptions, vars(args))
    video, out = Path(args.video).expanduser(), Path(serving.out).expanduser()
    if video.is_dir():
        raise DataError(f"{video} is a folder: a survey is of one video (one pipe section); run it for each")
    if not video.is_file():
        raise DataError(f"{video}: no such video file")
    sampling = video_options(vars(args))
    model = Model(Path(args.model).expanduser(), runtime=serving.runtime, threads=serving.threads)
    survey = make_survey(options, header_flags(args), model, Path(args.model).name, print_line)
    done = survey_video(model, video, out, sampling, survey, print_line, serving.batch)
    print_line(
        f"{video.name}: {done['frames']} frames, {done['events']} events, {done['observations']} observations "
        f"({sum(o.review for o in survey.rows)} for review) in {done['seconds']:.1f} s; {out / REPORT_FILE}"
    )
    return 0


def main(argv: list[str] | None = None, prog: str = "hybrid survey") -> int:
    """Run ``hybrid survey``; a mistake ends in one line and exit code 2."""
    return command_main(parser(prog), run, print_line, argv)


if __name__ == "__main__":
    sys.exit(main())
