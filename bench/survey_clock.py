"""Does the model's attention give a defect's clock position? (docs/survey.md, "Clock position")

    python bench/survey_clock.py --ckpt CHECKPOINT.pt [--videos 40] [--results bench/results/survey_clock.md]

The synthetic inspection videos' scenes (``hybrid.data.synthetic.pipe_videos.plan_scenes``) whose one
defect has a recorded clock position (where it was painted: the centroid of what differs from the
same pipe without it), each as the video shows it in the scene's middle (1280x720, zoomed, with
the counter overlay; ``--no-overlay``: without). For each, the checkpoint's decoder
attention over the patch grid (last layer, mean over heads and queries, as ``keyframes.png``
draws it) gives a clock position (the centroid of the attention above its mean, relative to the
image centre: :func:`hybrid.util.clock.attention_clock`). Reported: the share within one clock
hour of the truth, against what guessing gives (3 of 12 hours: 25%). ``--stamp MODEL.onnx`` (a file
exported from that checkpoint) records the share in the model's card; a survey fills ``clock_from``
only for a model whose card says at least 70%.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrid.data.synthetic.pipe_videos import VideoSpec, draw_overlay, plan_scenes, render_frame  # noqa: E402
from hybrid.deploy.card import stamp_clock_measurement  # noqa: E402
from hybrid.deploy.serving import load_served_model  # noqa: E402
from hybrid.serve.model_card import CLOCK_SHIP_AT  # noqa: E402
from hybrid.survey.counter import CounterReader, blank_text  # noqa: E402
from hybrid.tracking.keyframes import attention_grids  # noqa: E402
from hybrid.util.clock import attention_clock, hours_apart  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a hybrid checkpoint (the attention is the torch model's)")
    parser.add_argument("--videos", type=int, default=40, help="synthetic videos whose scenes are used")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-overlay", dest="overlay", action="store_false", help="frames without the counter overlay")
    parser.add_argument(
        "--keep-text",
        dest="blank_text",
        action="store_false",
        help="leave the text OCR finds in the frame (a survey blanks it)",
    )
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_survey_clock"))
    parser.add_argument("--results", default=None, help="also write the table here (bench/results/...md)")
    parser.add_argument(
        "--label", default=None, help="what the table calls the model (default: the checkpoint's file name)"
    )
    parser.add_argument(
        "--stamp",
        default=None,
        help="an .onnx exported from --ckpt: its card records the share (a survey then trusts it)",
    )
    return parser.parse_args(argv)


def video_frame(spec: VideoSpec, planned: list, scene, *, overlay: bool):
    """The frame the video shows in the middle of ``scene``: zoomed, 1280x720, with the counter
    overlay (the text a survey's video carries) unless ``overlay`` is off."""
    middle = (scene.start_s + scene.end_s) / 2
    frame = render_frame(planned, middle, (spec.width, spec.height))
    return draw_overlay(frame, spec, 12.34) if overlay else frame


def main(argv=None) -> int:
    args = parse_args(argv)
    served = load_served_model(args.ckpt)
    data = served.trained_data
    spec = VideoSpec(duration_s=args.seconds, width=1280, height=720)
    scenes, frames = [], []
    for index in range(args.videos):
        planned = plan_scenes(VideoSpec(duration_s=args.seconds, seed=1000 + index), 0)
        for scene in (s for s in planned if s.clock is not None):
            scenes.append(scene)
            frames.append(video_frame(spec, planned, scene, overlay=args.overlay))
    if args.blank_text:  # as a survey does: the text its counter search found is not looked at
        reader = CounterReader()
        frames = [blank_text(frame, reader.texts_in(frame)) for frame in frames]
    grids = attention_grids(served.model, frames, data, served.runtime)
    if grids is None:
        raise SystemExit(f"{args.ckpt}: the model has no attention maps")
    found = [attention_clock(grid) for grid in grids]
    gaps = [None if f is None else hours_apart(f, s.clock) for f, s in zip(found, scenes, strict=True)]
    within = sum(g is not None and g <= 1 for g in gaps)
    result = {
        "checkpoint": args.ckpt,
        "grid": f"{grids[0].shape[0]}x{grids[0].shape[1]}",
        "scenes": len(scenes),
        "overlay": args.overlay,
        "text_blanked": args.blank_text,
        "no_direction": sum(f is None for f in found),
        "within_1h": within,
        "share_within_1h": within / len(scenes),
        "hours_apart": dict(sorted(Counter(g for g in gaps if g is not None).items())),
        "ships": within / len(scenes) >= CLOCK_SHIP_AT,
    }
    if args.stamp:
        stamp_clock_measurement(args.stamp, args.ckpt, result["share_within_1h"])
        print(f"{args.stamp}: clock_within_1h={result['share_within_1h']:.4f} recorded in its card")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "survey_clock.json").write_text(json.dumps(result, indent=1) + "\n")
    table = "\n".join(
        [
            f"Clock position from the decoder's attention (`python bench/survey_clock.py`), checkpoint "
            f"{args.label or '`' + Path(args.ckpt).name + '`'} ({result['grid']} patch grid), {result['scenes']} synthetic scenes with one "
            f"painted defect each, as the video shows them (1280x720, {'with' if args.overlay else 'without'} the "
            f"counter overlay{', the text OCR finds blanked as a survey blanks it' if args.blank_text else ''}).",
            "",
            "| scenes | attention with no direction | within 1 hour of the truth | share | guessing | ships (>= 70%) |",
            "|---:|---:|---:|---:|---:|---|",
            f"| {result['scenes']} | {result['no_direction']} | {within} | {100 * result['share_within_1h']:.1f}% | 25% | "
            f"{'yes: a survey with this model fills clock_from' if result['ships'] else 'no: clock_from stays empty'} |",
            "",
            "Hours between the attention's clock position and the truth: "
            + ", ".join(f"{h} h: {n}" for h, n in result["hours_apart"].items())
            + ".",
            "",
        ]
    )
    print(table)
    if args.results:
        Path(args.results).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
