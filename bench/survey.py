"""``make bench-survey``: the draft survey's acceptance figures, measured here (docs/survey.md).

    python bench/survey.py --model MODEL.onnx [--videos 2] [--seconds 60] [--rounds 3]

Synthetic 1280x720 inspection videos with the CCTV overlay (``hybrid synthetic-video``: the
counter, section and date burned in; the crawler's truth beside them: ``<video>.telemetry.csv``,
``survey_truth.csv``); the first with a reversal. For each video, in the serving install
(``.venv-serve``, no torch):

- ``hybrid survey`` reads the counter: the share of samples read, and the distance error after
  cleaning against the crawler's true distance at each sample time (median, worst);
- its observations against the true defects: a true defect the model found (an event overlapping
  it in time) is matched to that event's observation (a point: its distance against where the
  crawler stood; a continuous defect: start and finish against where the defect came into and left
  the view); the share within 0.3 m;
- the same with events built from the truth (each defect's time on screen, peaking in its middle):
  what the distances and the coding do on their own, the model aside;
- time: ``hybrid survey`` against ``hybrid serve`` on the same video, alternately, ``--rounds``
  times each; the median ratio of wall times.

And the serving install's size (``du``). Writes ``--out``/survey.json and the table to
``--results`` (bench/results/survey_x86.md).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrid.data.synthetic.pipe_videos import SURVEY_TRUTH_FILE, TELEMETRY_SUFFIX, VideoSpec, generate  # noqa: E402
from hybrid.survey.codes import CodeMap  # noqa: E402
from hybrid.survey.distance import clean_readings  # noqa: E402
from hybrid.survey.observations import observations  # noqa: E402
from hybrid.video.events import Event  # noqa: E402

SERVE_HYBRID = ROOT / ".venv-serve" / "bin" / "hybrid"
TOLERANCE_M = 0.3
SLACK_S = 0.01  # observations round video times to the centisecond
FOUND_IOU = 0.5  # an event finds a defect when their times overlap this much (intersection over union)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="an exported .onnx (binary or multi-label)")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=4, help="video seed (4: continuous defects in both videos)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench_survey"))
    parser.add_argument("--results", default=None, help="also write the table here (bench/results/...md)")
    parser.add_argument("--label", default=None, help="what the table calls the model (default: its file name)")
    parser.add_argument("--screenshot", default=None, help="a PNG of the first video's report.html (headless Chromium)")
    parser.add_argument("--survey-flags", default="", help="more hybrid survey flags, e.g. '--standard pacp'")
    return parser.parse_args(argv)


def run(*arguments: str) -> float:
    """One ``.venv-serve/bin/hybrid`` command; its wall time."""
    started = time.perf_counter()
    done = subprocess.run([str(SERVE_HYBRID), *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hybrid {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def distance_errors(out: Path, telemetry: Path) -> dict:
    """Counter reading share and cleaned-distance error of one survey's ``frames.csv``."""
    frames = pd.read_csv(out / "frames.csv")
    track = pd.read_csv(telemetry)
    error = np.abs(frames.distance_m - np.interp(frames.time_s, track.time_s, track.distance_m))
    return {
        "samples": len(frames),
        "read": int((frames.distance_source == "counter").sum()),
        "median_error_m": float(error.median()),
        "worst_error_m": float(error.max()),
    }


def scenes_of(truth: pd.DataFrame) -> pd.DataFrame:
    """One row per defect on screen (a scene's codes together; a binary model sees one defect)."""
    return truth.groupby(["start_s", "end_s"], as_index=False).agg(
        start_m=("start_m", "first"), end_m=("end_m", "first"), distance_m=("distance_m", "first"),
        continuous=("continuous", "first"), labels=("label", lambda s: set(s)),
    )  # fmt: skip


def match(scene, rows: pd.DataFrame) -> dict | None:
    """The observation(s) of the event that found ``scene``: an event overlapping it in time by at
    least :data:`FOUND_IOU` (intersection over union; an event spanning far more, the defect merged
    with the pipe around it, covers it but did not find it). None when no event covers it;
    ``found`` False when one covers it without finding it; else whether its observation lies within
    the tolerance of the truth."""
    overlapping = rows[(rows.event_start_s < scene.end_s) & (rows.event_end_s > scene.start_s)]
    if overlapping.empty:
        return None
    inter = np.minimum(overlapping.event_end_s, scene.end_s) - np.maximum(overlapping.event_start_s, scene.start_s)
    union = np.maximum(overlapping.event_end_s, scene.end_s) - np.minimum(overlapping.event_start_s, scene.start_s)
    overlapping = overlapping[inter / union >= FOUND_IOU]
    if overlapping.empty:
        return {"kind": "continuous" if scene.continuous else "point", "found": False, "within": False}
    marker = overlapping.continuous.astype(object).fillna("").astype(str)
    if scene.continuous:
        starts, finishes = overlapping[marker.str.startswith("S")], overlapping[marker.str.startswith("F")]
        if starts.empty or finishes.empty:
            return {"kind": "continuous", "found": True, "paired": False, "within": False}
        start_error = float(np.min(np.abs(starts.distance_m - scene.start_m)))
        end_error = float(np.min(np.abs(finishes.distance_m - scene.end_m)))
        return {
            "kind": "continuous",
            "found": True,
            "paired": True,
            "within": max(start_error, end_error) <= TOLERANCE_M,
        }
    points = overlapping[marker == ""]
    candidates = points if not points.empty else overlapping
    error = float(np.min(np.abs(candidates.distance_m - scene.distance_m)))
    return {
        "kind": "point",
        "found": True,
        "paired": not points.empty,
        "within": error <= TOLERANCE_M,
        "error_m": error,
    }


def with_events(out: Path) -> pd.DataFrame:
    """``observations.csv`` rows of defects, each with the start and end of the event it came from."""
    rows = pd.read_csv(out / "observations.csv")
    rows = rows[~rows.label.isin(["start", "finish"])].copy()
    events = pd.read_csv(out / "events.csv")
    spans = []
    for row in rows.itertuples():
        hit = events[(events.start_s <= row.video_s + SLACK_S) & (events.end_s + SLACK_S >= row.video_s)]
        spans.append((hit.start_s.min(), hit.end_s.max()) if not hit.empty else (math.nan, math.nan))
    rows["event_start_s"], rows["event_end_s"] = zip(*spans, strict=True) if spans else ([], [])
    return rows


def truth_survey(name: str, truth: pd.DataFrame, telemetry: Path, seconds: float) -> list[dict]:
    """Observations from events built from the truth, matched back to it."""
    track = pd.read_csv(telemetry)
    samples = np.arange(0, seconds, 0.5)
    distances = clean_readings(samples, list(np.round(np.interp(samples, track.time_s, track.distance_m), 2)), 1.0)
    scenes = scenes_of(truth)
    events = [
        Event(name, "Defect", s.start_s, s.end_s, (s.start_s + s.end_s) / 2, 0.9, 0.8) for s in scenes.itertuples()
    ]
    rows = pd.DataFrame([o.row() for o in observations(name, events, distances, CodeMap(), with_nodes=False)])
    starts = {e.peak_s: (e.start_s, e.end_s) for e in events}
    spans = []
    for row in rows.itertuples():  # a row's event: the one whose window holds its video time
        span = next(
            (v for v in starts.values() if v[0] - SLACK_S <= row.video_s <= v[1] + SLACK_S), (math.nan, math.nan)
        )
        spans.append(span)
    rows["event_start_s"], rows["event_end_s"] = zip(*spans, strict=True)
    return [match(scene, rows) for scene in scenes.itertuples()]


def summary(matches: list[dict | None]) -> dict:
    covered = [m for m in matches if m is not None]
    found = [m for m in covered if m["found"]]
    continuous = [m for m in found if m["kind"] == "continuous"]
    return {
        "defects": len(matches),
        "covered": len(covered),
        "found": len(found),
        "within_0.3m": sum(m["within"] for m in found),
        "continuous_found": len(continuous),
        "continuous_paired_within": sum(m["within"] for m in continuous),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    videos = out / "videos"
    if not (videos / SURVEY_TRUTH_FILE).is_file():
        generate(
            videos,
            VideoSpec(
                videos=args.videos, duration_s=args.seconds, width=1280, height=720, seed=args.seed, reversal=True
            ),
        )
    truth = pd.read_csv(videos / SURVEY_TRUTH_FILE)
    figures, timings = [], []
    for index in range(args.videos):
        name = f"pipe_{index + 1:03d}"
        video, telemetry = videos / f"{name}.mp4", videos / f"{name}{TELEMETRY_SUFFIX}"
        survey_out, serve_out = out / name / "survey", out / name / "serve"
        rounds = []
        for _ in range(args.rounds):
            header = ["--section", f"S-{index + 1:03d}", "--from-node", f"MH{index + 1:02d}", "--to-node", f"MH{index + 2:02d}",
                      "--direction", "downstream", "--date", "2026-12-07", *args.survey_flags.split()]  # fmt: skip
            rounds.append((run("serve", args.model, str(video), "--out", str(serve_out)),
                           run("survey", args.model, str(video), "--out", str(survey_out), *header)))  # fmt: skip
        serve_s, survey_s = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
        mine = truth[truth.video == name]
        model = summary([match(scene, with_events(survey_out)) for scene in scenes_of(mine).itertuples()])
        ideal = summary(truth_survey(name, mine, telemetry, args.seconds))
        figures.append({"video": name, **distance_errors(survey_out, telemetry), "model": model, "truth_events": ideal,
                        "serve_s": serve_s, "survey_s": survey_s, "ratio": survey_s / serve_s})  # fmt: skip
        timings += [r[1] / r[0] for r in rounds]
    size = subprocess.run(["du", "-sm", str(ROOT / ".venv-serve")], capture_output=True, text=True).stdout.split()[0]
    result = {"machine": f"{platform.machine()}, {cpu_name()}", "model": args.label or f"`{Path(args.model).name}`", "videos": figures,
              "serving_install_mb": int(size), "ratio_median": statistics.median(timings)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "survey.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    print(table)
    if args.results:
        Path(args.results).write_text(table)
    if args.screenshot:
        screenshot(out / "pipe_001" / "survey" / "report.html", Path(args.screenshot))
    return 0


def screenshot(page: Path, png: Path) -> None:
    """``page`` as Debian's Chromium renders it, headless, 1200 px wide."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("--screenshot needs chromium (apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1500",
         f"--screenshot={png.resolve()}", page.resolve().as_uri()],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def markdown(result: dict) -> str:
    lines = [
        f"Draft survey acceptance (`python bench/survey.py`), {result['machine']}; model {result['model']}; "
        f"serving install (`.venv-serve`) {result['serving_install_mb']} MB.",
        "",
        "| video | samples | counter read | distance error median / worst (m) | true defects | covered by an event | "
        "found (event IoU >= 0.5) | their observation within 0.3 m | continuous found / both ends within 0.3 m | "
        "from truth events: within 0.3 m | continuous pairs within 0.3 m | serve (s) | survey (s) | survey / serve |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in result["videos"]:
        m, t = v["model"], v["truth_events"]
        lines.append(
            f"| {v['video']} | {v['samples']} | {v['read']} ({100 * v['read'] / v['samples']:.1f}%) | "
            f"{v['median_error_m']:.3f} / {v['worst_error_m']:.3f} | {m['defects']} | {m['covered']} | {m['found']} | "
            f"{m['within_0.3m']} of {m['found']} | {m['continuous_found']} / {m['continuous_paired_within']} | "
            f"{t['within_0.3m']} of {t['defects']} | {t['continuous_paired_within']} of {t['continuous_found']} | "
            f"{v['serve_s']:.2f} | {v['survey_s']:.2f} | {v['ratio']:.2f}x |"
        )
    lines += ["", f"Median survey / serve wall-time ratio over every round: {result['ratio_median']:.2f}x.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
