"""The draft inspection survey (docs/survey.md): distances from the counter, telemetry or a speed;
the code map; observations at metres; the report; bad input in one line each."""

from __future__ import annotations

import csv
import html
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.synthetic.pipe_videos import (
    SURVEY_TRUTH_FILE,
    TELEMETRY_SUFFIX,
    VideoSpec,
    crawler_track,
    draw_overlay,
    generate,
    plan_scenes,
)
from hybrid.errors import CheckpointError, DataError
from hybrid.survey.codes import CodeMap, builtin_codes, code_table
from hybrid.survey.counter import CounterReader, parse_distance
from hybrid.survey.distance import READ, clean_readings, from_speed, from_telemetry, read_telemetry
from hybrid.survey.header import read_header, survey_header
from hybrid.survey.observations import observations
from hybrid.survey.page import SurveyPage, render
from hybrid.video.events import Event
from tests.test_deploy import SURVEY_STACK
from tests.test_serve import console_refusing

ROOT = Path(__file__).resolve().parents[1]


# --- distances -----------------------------------------------------------------------------


def test_counter_text_reads_as_metres_in_the_forms_crawlers_print():
    assert parse_distance("12.34m") == 12.34
    assert parse_distance("  12.3 m") == 12.3
    assert parse_distance("0012.34") == 12.34
    assert parse_distance("3,25m") == 3.25
    assert parse_distance("40.5 ft") == pytest.approx(40.5 * 0.3048)
    assert parse_distance("S-001 07.12.2026") is None  # a date is not a distance
    assert parse_distance("no number") is None


def test_cleaning_rejects_a_misread_jump_keeps_a_reversal_and_interpolates_gaps():
    times = np.arange(0, 10, 0.5)
    truth = np.concatenate([np.arange(0, 3, 0.5) * 0.2, 0.6 - np.arange(0, 1.5, 0.5) * 0.2, np.linspace(0.3, 1.6, 11)])
    readings = list(np.round(truth, 2))
    readings[4] = 70.4  # a misread digit
    readings[12] = None  # nothing readable
    cleaned = clean_readings(times, readings, max_speed_m_s=1.0)
    assert cleaned.rejected == 1 and cleaned.unread == 1
    assert cleaned.sources[4] == "interpolated" and cleaned.sources[12] == "interpolated" and cleaned.sources[0] == READ
    assert np.max(np.abs(cleaned.metres - truth)) < 0.06
    # the crawler backing up (samples 6-9) is kept, not smoothed away
    assert cleaned.metres[9] < cleaned.metres[8] < cleaned.metres[7] < cleaned.metres[6]


def test_cleaning_extrapolates_nothing():
    cleaned = clean_readings([0, 0.5, 1.0, 1.5], [None, 1.0, 1.1, None], max_speed_m_s=1.0)
    assert math.isnan(cleaned.metres[0]) and math.isnan(cleaned.metres[3]) and cleaned.known == 2


def test_telemetry_is_interpolated_and_a_bad_row_is_named(tmp_path):
    good = tmp_path / "t.csv"
    good.write_text("time_s,distance_m\n0,0\n10,2.0\n")
    assert list(from_telemetry([0, 5, 12], good).metres[:2]) == [0.0, 1.0]
    assert math.isnan(from_telemetry([12], good).metres[0])
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,distance_m\n0,0\n1,zero\n")
    with pytest.raises(DataError, match=r"bad.csv, row 3: time_s='1', distance_m='zero' are not numbers"):
        read_telemetry(bad)
    backwards = tmp_path / "back.csv"
    backwards.write_text("time_s,distance_m\n0,0\n2,1\n1,2\n")
    with pytest.raises(DataError, match=r"row 4: time_s=1\.0 does not follow 2\.0"):
        read_telemetry(backwards)


def test_speed_gives_distance_from_the_start():
    assert list(from_speed([0, 1, 2], 0.25, start_m=3.0).metres) == [3.0, 3.25, 3.5]
    with pytest.raises(DataError, match="--speed"):
        from_speed([0], 0.0)


# --- the code map --------------------------------------------------------------------------


def test_every_sewerml_code_maps_in_both_standards_with_its_source():
    from hybrid.data.sewerml import DEFECT_CODES

    for standard in ("en13508", "pacp"):
        codes = builtin_codes(standard)
        assert set(DEFECT_CODES) <= set(codes)
        assert all(codes[c].code and codes[c].source for c in DEFECT_CODES)
    en = builtin_codes("en13508")
    assert (en["FS"].code, en["FS"].review) == ("BAJ", False)  # one-to-one
    assert (en["RB"].code, en["RB"].review) == ("BAB", True)  # cracks and breaks: the inspector's
    assert en["Defect"].review and not en["Defect"].code  # a binary model does not say which
    assert (builtin_codes("pacp")["AF"].code, builtin_codes("pacp")["AF"].review) == ("DS", True)  # a family


def test_a_label_missing_from_the_map_is_named_once_and_flagged(tmp_path):
    lines = []
    codes = CodeMap("en13508", warn=lines.append)
    assert codes.lookup("XX").review and codes.lookup("XX").code == ""
    assert lines == [
        "model label 'XX' is not in the code map (hybrid/survey/codes.csv); its observations are flagged review"
    ]


def test_a_users_map_replaces_entries_and_bad_keys_are_named(tmp_path):
    mine = tmp_path / "codes.yaml"
    mine.write_text("RB: BAC\nOB: {code: BAF, name: Surface damage, review: true}\n")
    codes = CodeMap("en13508", mine)
    assert (codes.lookup("RB").code, codes.lookup("RB").review) == ("BAC", False)
    assert codes.lookup("OB").review and codes.lookup("FS").code == "BAJ"
    mine.write_text("RB: {code: BAC, grade: 3}\n")
    with pytest.raises(DataError, match=r"codes\.yaml: RB: unknown key 'grade'"):
        CodeMap("en13508", mine)
    assert "BAJ" in code_table("en13508") and "JO" in code_table("pacp")


# --- the header ----------------------------------------------------------------------------


def test_header_from_yaml_and_flags_and_an_unknown_key_named(tmp_path):
    path = tmp_path / "header.yaml"
    path.write_text("section: S-7\nfrom_node: MH1\nto_node: MH2\ndirection: downstream\n")
    header = survey_header(path, section="S-8", date="2026-12-07", operator=None)
    assert (header.section, header.from_node, header.date) == ("S-8", "MH1", "2026-12-07")
    path.write_text("section: S-7\npipe_colour: red\n")
    with pytest.raises(DataError, match=r"header.yaml: unknown key 'pipe_colour' \(known: section, from_node"):
        read_header(path)
    path.write_text("direction: sideways\n")
    with pytest.raises(DataError, match="direction 'sideways'"):
        read_header(path)


# --- observations from events built from the truth -----------------------------------------


def truth_events(spec: VideoSpec, index: int = 0):
    """The truth of a synthetic video as the model would ideally find it: one event per code on
    screen, peaking in its middle; and the crawler's distances at 2 samples a second."""
    scenes = plan_scenes(spec, index)
    times, metres = crawler_track(spec, scenes)
    samples = np.arange(0, spec.duration_s, 0.5)
    readings = list(np.round(np.interp(samples, times, metres), 2))
    events = [
        Event("pipe_001", code, s.start_s, s.end_s, (s.start_s + s.end_s) / 2, 0.9, 0.8)
        for s in scenes
        for code in s.codes
    ]
    return scenes, events, clean_readings(samples, readings, 1.0), (times, metres)


def test_observations_from_truth_events_land_at_the_true_metres():
    spec = VideoSpec(duration_s=120.0, seed=3, reversal=True)
    scenes, events, distances, (times, metres) = truth_events(spec)
    assert any(s.continuous for s in scenes) and any(s.codes and not s.continuous for s in scenes)
    rows = observations("pipe_001", events, distances, CodeMap("en13508"), section="S-001")
    assert rows[0].label == "start" and rows[0].code == "BCD" and rows[-1].code == "BCE"
    for scene in (s for s in scenes if s.codes):
        start_m, end_m = np.interp([scene.start_s, scene.end_s], times, metres)
        for code in scene.codes:
            mine = [r for r in rows if r.label == code and scene.start_s - 0.01 <= r.video_s <= scene.end_s + 0.01]
            if scene.continuous:
                assert end_m - start_m > 1.0
                starts = [r for r in mine if r.continuous.startswith("S")]
                finishes = [r for r in mine if r.continuous.startswith("F")]
                assert len(starts) == len(finishes) == 1
                assert abs(starts[0].distance_m - start_m) <= 0.3 and abs(finishes[0].distance_m - end_m) <= 0.3
                assert starts[0].continuous[1:] == finishes[0].continuous[1:]
            else:
                assert len(mine) == 1 and mine[0].continuous == "" and mine[0].end_m is None
                assert abs(mine[0].distance_m - np.interp(scene.start_s, times, metres)) <= 0.3


def test_continuous_pairs_are_numbered_after_earlier_ones():
    distances = clean_readings([0, 2, 4, 6, 8], [0.0, 0.5, 1.0, 1.5, 2.0], 1.0)
    long = Event("v", "Defect", 0.0, 8.0, 4.0, 0.9, 0.8)  # 2 m along the pipe: continuous
    rows = observations("v", [long], distances, CodeMap(), with_nodes=False, pairs_before=2)
    assert [r.continuous for r in rows] == ["S03", "F03"]


def test_binary_defects_and_unknown_distances_are_flagged_for_review():
    distances = clean_readings([0, 1, 2, 3], [0.0, 0.2, 0.4, 0.6], 1.0)
    late = Event("v", "Defect", 5.0, 6.0, 5.5, 0.9, 0.8)  # after the last known distance
    rows = observations("v", [Event("v", "Defect", 1.0, 2.0, 1.5, 0.9, 0.8), late], distances, CodeMap("pacp"))
    defects = [r for r in rows if r.label == "Defect"]
    assert all(r.review for r in defects) and math.isnan(defects[1].distance_m)
    assert [r.code for r in rows if r.label in ("start", "finish")] == ["AMH", "AMH"]


# --- the synthetic overlay, read back by OCR ------------------------------------------------


def test_the_counter_is_found_and_read_on_a_synthetic_overlay():
    spec = VideoSpec(width=640, height=360)
    frame = np.full((360, 640, 3), 90, np.uint8)
    reader = CounterReader()
    assert reader.read(draw_overlay(frame, spec, 12.34)).metres == pytest.approx(12.34)
    assert reader.box is not None and reader.box[0] < 100 and reader.box[1] < 60  # top left
    assert reader.read(draw_overlay(frame, spec, 3.05)).metres == pytest.approx(3.05)


def test_no_counter_found_says_which_option_to_use():
    reader = CounterReader(source="pipe.mp4")
    blank = np.full((360, 640, 3), 90, np.uint8)
    with pytest.raises(
        DataError,
        match=r"pipe\.mp4: no distance counter found .* --counter-box x0,y0,x1,y1, or .* --telemetry CSV or --speed",
    ):
        for _ in range(20):
            reader.read(blank)


# --- the report -------------------------------------------------------------------------------


def test_the_report_is_self_contained_html():
    spec = VideoSpec(duration_s=60.0, seed=3)
    _, events, distances, _ = truth_events(spec)
    rows = observations("pipe_001", events, distances, CodeMap("en13508"), section="S-001")
    text = render(SurveyPage(survey_header(None, section="S-001"), rows, {"pipe_001": distances}))
    assert text.count("<tr class=") == len(rows) and '<svg id="strip"' in text and "S-001" in text
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in text


# --- hybrid survey, end to end in the serving install's view (no torch, Hydra, pandas) ------

SURVEY = console_refusing(SURVEY_STACK, "hybrid survey")


def hybrid(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SURVEY, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def overlay_video(tmp_path_factory) -> Path:
    """A 24 s synthetic inspection video with the counter overlay, a point and a continuous defect."""
    spec = VideoSpec(videos=1, duration_s=24.0, width=640, height=360, fps=10.0, seed=5, continuous_share=0.5)
    return generate(tmp_path_factory.mktemp("survey_video"), spec) / "pipe_001.mp4"


def test_survey_writes_distances_observations_photos_and_a_report(overlay_video, fp32_export, tmp_path):
    out = tmp_path / "survey"
    header = tmp_path / "header.yaml"
    header.write_text("section: S-001\nfrom_node: MH7\nto_node: MH8\ndirection: downstream\n")
    done = hybrid("survey", str(fp32_export[0]), str(overlay_video), "--out", str(out), "--header", str(header),
                  "--date", "2026-12-07", "--threshold", "0.3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    frames = pd.read_csv(out / "frames.csv")
    assert list(frames.columns[-2:]) == ["distance_m", "distance_source"]
    read = (frames.distance_source == "counter").mean()
    assert read >= 0.98, done.stderr
    track = pd.read_csv(overlay_video.parent / f"pipe_001{TELEMETRY_SUFFIX}")
    truth = np.interp(frames.time_s, track.time_s, track.distance_m)
    error = np.abs(frames.distance_m - truth)
    assert np.median(error) <= 0.05 and error.max() <= 0.2
    rows = list(csv.DictReader((out / "observations.csv").read_text().splitlines()))
    assert rows[0]["code"] == "BCD" and rows[-1]["code"] == "BCE"
    assert float(rows[0]["distance_m"]) == pytest.approx(truth[0], abs=0.05)
    for row in rows:
        assert (out / "photos" / row["photo"]).is_file() and row["photo"].startswith(
            f"{float(row['distance_m']):07.2f}m"
        )
    assert json.loads((out / "observations.json").read_text())["observations"][0]["section"] == "S-001"
    page = (out / "report.html").read_text()
    assert "MH7" in page and page.count('src="data:image/jpeg;base64,') == len(rows)
    assert "counter read on" in done.stderr
    assert all(row["clock_from"] == "" for row in rows)  # this model's clock positions were never measured
    assert "clock positions left empty: never measured for this model" in done.stderr


def test_clock_positions_only_from_a_model_measured_to_give_them(overlay_video, trained, fp32_export, tmp_path):
    """The card records bench/survey_clock.py's share: at 70% or more the survey asks the model's
    attention (the overlay's text blanked); under it, or never measured, the field stays empty and a
    line says why."""
    from hybrid.deploy.card import stamp_clock_measurement
    from hybrid.serve.model_card import ModelCard

    for share, filled in ((0.9, True), (0.5, False)):
        model = tmp_path / f"stamped_{share}.onnx"
        shutil.copy(fp32_export[0], model)
        stamp_clock_measurement(model, trained / "checkpoints" / "best.pt", share)
        assert ModelCard.read(model).clock_within_1h == share
        out = tmp_path / f"out_{share}"
        done = hybrid("survey", str(model), str(overlay_video), "--out", str(out), "--threshold", "0.3")
        assert done.returncode == 0, done.stderr
        rows = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
        defects = rows[~rows.label.isin(["start", "finish"]) & ~rows.continuous.str.startswith("F")]
        assert len(defects) and defects.clock_from.isin([str(h) for h in range(1, 13)] + [""]).all()
        assert (defects.clock_from != "").any() == filled
        assert (rows[rows.label.isin(["start", "finish"])].clock_from == "").all()
        assert ("under 70%" in done.stderr) == (not filled)
    with pytest.raises(CheckpointError, match="was exported from"):
        stamp_clock_measurement(model, tmp_path / "other.pt", 0.9) if (tmp_path / "other.pt").write_bytes(
            b"x"
        ) else None


def test_survey_from_telemetry_matches_the_truth(overlay_video, fp32_export, tmp_path):
    telemetry = overlay_video.parent / f"pipe_001{TELEMETRY_SUFFIX}"
    done = hybrid(
        "survey", str(fp32_export[0]), str(overlay_video), "--out", str(tmp_path), "--telemetry", str(telemetry)
    )
    assert done.returncode == 0, done.stderr
    frames = pd.read_csv(tmp_path / "frames.csv")
    track = pd.read_csv(telemetry)
    assert (frames.distance_source == "telemetry").all()
    assert np.allclose(frames.distance_m, np.interp(frames.time_s, track.time_s, track.distance_m), atol=1e-3)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--header", "{tmp}/h.yaml"), "h.yaml: unknown key 'colour' (known: section, from_node"),
        (("--telemetry", "{tmp}/t.csv"), "t.csv, row 3: time_s='2', distance_m='x' are not numbers"),
        (("--codes", "{tmp}/c.yaml"), "c.yaml: RB: unknown key 'grade'"),
        (("--speed", "0.2", "--telemetry", "{tmp}/t.csv"), "give one distance source"),
    ],
)
def test_bad_survey_input_is_one_line_and_writes_nothing(overlay_video, fp32_export, tmp_path, extra, expected):
    (tmp_path / "h.yaml").write_text("section: S-1\ncolour: red\n")
    (tmp_path / "t.csv").write_text("time_s,distance_m\n0,0\n2,x\n")
    (tmp_path / "c.yaml").write_text("RB: {code: BAC, grade: 2}\n")
    out = tmp_path / "out"
    done = hybrid(
        "survey", str(fp32_export[0]), str(overlay_video), "--out", str(out), *(e.format(tmp=tmp_path) for e in extra)
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("hybrid survey: ")
    assert expected in lines[0] and not out.exists()


def grey_video(path: Path, seconds: float = 6.0, fps: int = 5) -> Path:
    """A video of plain grey frames: no text anywhere."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 110, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_video_without_counter_says_which_option_to_use(fp32_export, tmp_path):
    plain = grey_video(tmp_path / "grey.mp4")
    done = hybrid("survey", str(fp32_export[0]), str(plain), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert (
        "grey.mp4: no distance counter found in its first 8 sampled frames; give its place with --counter-box"
        in done.stderr
    )
    assert not (tmp_path / "out").exists()
    by_speed = hybrid("survey", str(fp32_export[0]), str(plain), "--out", str(tmp_path / "s"), "--speed", "0.1")
    assert by_speed.returncode == 0, by_speed.stderr
    frames = pd.read_csv(tmp_path / "s" / "frames.csv")
    assert np.allclose(frames.distance_m, 0.1 * frames.time_s, atol=1e-3) and (frames.distance_source == "speed").all()


def test_a_counter_box_outside_the_frame_is_named(overlay_video, fp32_export, tmp_path):
    done = hybrid(
        "survey",
        str(fp32_export[0]),
        str(overlay_video),
        "--out",
        str(tmp_path / "out"),
        "--counter-box",
        "5000,5000,5100,5040",
    )
    assert done.returncode == 2 and done.stderr.splitlines()[-1].endswith(
        "--counter-box 5000,5000,5100,5040: outside the 640x360 frame"
    )
    assert not (tmp_path / "out").exists()


def test_a_counter_box_with_no_reading_keeps_the_scores_and_says_so(fp32_export, tmp_path):
    plain = grey_video(tmp_path / "grey.mp4")
    done = hybrid(
        "survey", str(fp32_export[0]), str(plain), "--out", str(tmp_path / "out"), "--counter-box", "0,0,100,40"
    )
    assert (
        done.returncode == 2
        and "gave no distance on any of its 12 samples (frames.csv and events.csv are written)" in done.stderr
    )
    assert len(pd.read_csv(tmp_path / "out" / "frames.csv")) == 12 and (tmp_path / "out" / "events.csv").is_file()


def test_list_codes_prints_the_map_and_help_lists_every_flag():
    done = hybrid("survey", "--list-codes", "--standard", "pacp")
    assert done.returncode == 0 and "NASSCO PACP codes" in done.stdout and "JO" in done.stdout
    helped = hybrid("survey", "--help")
    assert helped.returncode == 0 and "--counter-box" in helped.stdout and "--from-node" in helped.stdout
    served = hybrid("serve", "--help")
    assert served.returncode == 0 and "--survey" in served.stdout and "--telemetry" in served.stdout


@pytest.mark.slow
def test_live_survey_prints_observations_and_a_restart_keeps_them(overlay_video, fp32_export, tmp_path):
    """hybrid serve --survey on the video played as a camera, at a threshold every frame reaches
    (one event from the first frame): SIGTERM closes it into observations, printed with their
    distance and written with the report; a second run on the same --out keeps them, one start."""
    from tests.test_serve import start_hybrid

    out = tmp_path / "live"
    flags = ("--out", str(out), "--realtime", "--survey", "--threshold", "0.01", "--section", "S-9")
    first = start_hybrid("serve", str(fp32_export[0]), str(overlay_video), *flags, code=SURVEY)
    time.sleep(12)
    # what a power cut now would leave: the start node is written at the first known distance
    assert pd.read_csv(out / "observations.csv").label.tolist()[:1] == ["start"]
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    printed = [json.loads(line) for line in stdout.splitlines() if json.loads(line)["type"] == "observation"]
    assert printed and all(isinstance(line["distance_m"], float) for line in printed), stdout
    frames = pd.read_csv(out / "frames.csv")
    assert list(frames.columns[-4:]) == ["distance_m", "distance_source", "run", "lag_s"]
    assert (frames.distance_source == "counter").mean() >= 0.9
    rows = pd.read_csv(out / "observations.csv")
    assert rows.label.iloc[0] == "start" and rows.label.iloc[-1] == "finish" and (rows.section == "S-9").all()
    assert len(rows) == len(printed) + 2 and (out / "report.html").is_file()
    assert all((out / "photos" / name).is_file() for name in rows.photo.dropna())
    second = start_hybrid("serve", str(fp32_export[0]), str(overlay_video), *flags, code=SURVEY)
    time.sleep(6)
    second.send_signal(signal.SIGTERM)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0 and "observations of earlier runs kept" in stderr, stderr
    again = pd.read_csv(out / "observations.csv")
    assert (again.label == "start").sum() == 1 and (again.label == "finish").sum() == 1
    kept = rows[rows.label != "finish"].drop(columns=["review"]).reset_index(drop=True)
    assert again.iloc[: len(kept)].drop(columns=["review"]).equals(kept)
    markers = again.continuous.dropna()
    assert markers.is_unique  # continuous pairs are numbered across the folder's runs


# --- report.html in a real browser ------------------------------------------------------------

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
# .ci/run installs Debian's chromium and sets this, so CI never skips the browser test.
BROWSER_REQUIRED = os.environ.get("HYBRID_REQUIRE_BROWSER") == "1"
# Appended to a copy of the page (the page itself has no script): what the browser loaded.
CHECK_SCRIPT = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.target.src)), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const out = document.createElement("pre");
  out.id = "check";
  out.textContent = JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    header: document.querySelectorAll("#header tr").length,
    strip: document.querySelectorAll("#strip circle, #strip rect").length,
    rows: document.querySelectorAll("#observations tbody tr").length,
    strip_width: document.getElementById("strip").getBoundingClientRect().width,
    errors: window.__errors,
  });
  document.body.appendChild(out);
});
</script>"""


def browse(*flags: str) -> subprocess.CompletedProcess:
    command = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(BROWSER is None and not BROWSER_REQUIRED, reason="no chromium here (.ci/run installs Debian's)")
def test_the_report_opens_in_a_real_browser(overlay_video, fp32_export, tmp_path):
    """report.html in headless Chromium: every photo loads, no console error, the header, strip and
    table are there, and its screenshot is not blank."""
    from PIL import Image

    assert BROWSER is not None, "HYBRID_REQUIRE_BROWSER=1 but no chromium on PATH"
    out = tmp_path / "survey"
    done = hybrid(
        "survey", str(fp32_export[0]), str(overlay_video), "--out", str(out), "--section", "S-1", "--threshold", "0.3"
    )
    assert done.returncode == 0, done.stderr
    page = (out / "report.html").read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = browse("--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", checked.as_uri())
    found = json.loads(html.unescape(dom.stdout.split('<pre id="check">')[1].split("</pre>")[0]))
    rows = pd.read_csv(out / "observations.csv")
    assert found["images"] == len(rows) and found["broken"] == [] and found["errors"] == []
    assert found["rows"] == len(rows) and found["header"] >= 1 and found["strip"] >= 1 and found["strip_width"] > 500
    assert "CONSOLE" not in dom.stderr, dom.stderr
    shot = tmp_path / "report.png"
    browse("--window-size=1200,1600", f"--screenshot={shot}", (out / "report.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.05  # text, drawings and photos, not a blank page


# --- clock positions ---------------------------------------------------------------------------


def test_clock_positions_from_a_mask_and_from_attention():
    from hybrid.util.clock import attention_clock, hours_apart, mask_clock

    right, bottom, top_left = (np.zeros((90, 160)) for _ in range(3))
    right[40:50, 140:155], bottom[80:88, 75:85], top_left[2:12, 2:20] = 1, 1, 1
    assert (mask_clock(right), mask_clock(bottom), mask_clock(top_left)) == (3, 6, 10)
    grid = np.ones((4, 4))
    assert attention_clock(grid) is None  # uniform attention points nowhere
    grid[0, 1:3] = 4.0
    assert attention_clock(grid) == 12 and hours_apart(11, 1) == 2 and hours_apart(12, 6) == 6


def test_synthetic_truth_records_where_a_lone_defect_was_painted():
    scenes = plan_scenes(VideoSpec(duration_s=60.0, seed=0), 0)
    lone = [s for s in scenes if len(s.codes) == 1 and s.codes != ["DE"]]
    assert lone and all(1 <= s.clock <= 12 for s in lone)
    assert all(s.clock is None for s in scenes if len(s.codes) != 1)


def test_the_exported_hybrid_gives_its_attention_grid(fp32_export, tmp_path):
    from hybrid.serve.model import Model

    model = Model(fp32_export[0])
    grids = model.attention_grids([np.zeros((3, 64, 64), np.uint8)] * 2)
    assert len(grids) == 2 and grids[0].shape == (4, 4) and grids[0].sum() == pytest.approx(1.0, abs=1e-4)


def test_text_burned_into_the_video_is_blanked_before_the_clock():
    from hybrid.survey.counter import blank_text

    frame = np.full((90, 160, 3), 100, np.uint8)
    frame[5:15, 5:40] = 255  # text
    blanked = blank_text(frame, [(5, 5, 40, 15)])
    assert (blanked[5:15, 5:40] == 100).all() and (frame[5:15, 5:40] == 255).all()


def test_a_live_survey_without_a_counter_goes_on_without_distances(fp32_export, tmp_path):
    """The robot keeps going: no counter in the first frames is one line, then samples without distances."""
    from hybrid.serve.live_survey import LiveSurvey
    from hybrid.serve.model import Model
    from hybrid.serve.survey_run import make_survey
    from hybrid.survey.schema import SurveyOptions

    lines = []
    model = Model(fp32_export[0])
    survey = make_survey(SurveyOptions(), {}, None, "model.onnx", lines.append)
    live = LiveSurvey(model, survey, tmp_path, "cam", emit=lambda line: None, report=lines.append)
    grey = np.full((240, 320, 3), 110, np.uint8)
    for index in range(10):
        fitted, reading, photo = live.prepare(grey)
        assert reading is None and fitted.shape == (3, 64, 64) and photo[:2] == b"\xff\xd8"
        assert live.sample(index * 0.5, reading, photo) == ("", "")
    assert len(lines) == 1 and "no distance counter found" in lines[0] and "goes on without distances" in lines[0]
    live.events([Event("cam", "Defect", 1.0, 3.0, 2.0, 0.9, 0.8)])
    rows = pd.read_csv(tmp_path / "observations.csv")
    assert len(rows) == 1 and rows.review.all() and rows.distance_m.isna().all()


@pytest.mark.slow
def test_acceptance_two_inspection_videos_at_1280x720(fp32_export, tmp_path):
    """The issue's acceptance at camera size: two 30 s 1280x720 videos with the overlay (a point and
    a continuous defect each, a reversal): the counter read on at least 98% of samples, distance
    error at most 0.05 m median and 0.2 m at worst; from events built from the truth, every defect's
    observation within 0.3 m and every continuous one a start/finish pair with both ends within 0.3 m.
    (bench/survey.py measures the same with a trained model, and the time against hybrid serve.)"""
    spec = VideoSpec(
        videos=2, duration_s=30.0, width=1280, height=720, fps=10.0, seed=0, continuous_share=0.5, reversal=True
    )
    folder = generate(tmp_path / "videos", spec)
    truth = pd.read_csv(folder / SURVEY_TRUTH_FILE)
    for index in range(2):
        name = f"pipe_{index + 1:03d}"
        out = tmp_path / name
        done = hybrid("survey", str(fp32_export[0]), str(folder / f"{name}.mp4"), "--out", str(out))
        assert done.returncode == 0, done.stderr
        frames = pd.read_csv(out / "frames.csv")
        track = pd.read_csv(folder / f"{name}{TELEMETRY_SUFFIX}")
        assert (frames.distance_source == "counter").mean() >= 0.98
        error = np.abs(frames.distance_m - np.interp(frames.time_s, track.time_s, track.distance_m))
        assert np.median(error) <= 0.05 and error.max() <= 0.2
        distances = clean_readings(frames.time_s, list(frames.distance_m), 1.0)
        scenes = truth[truth.video == name].groupby(["start_s", "end_s"], as_index=False).first()
        events = [
            Event(name, "Defect", s.start_s, s.end_s, (s.start_s + s.end_s) / 2, 0.9, 0.8) for s in scenes.itertuples()
        ]
        rows = observations(name, events, distances, CodeMap(), with_nodes=False)
        assert scenes.continuous.any()
        for scene in scenes.itertuples():
            mine = [r for r in rows if scene.start_s - 0.6 <= r.video_s <= scene.end_s + 0.6]
            if scene.continuous:
                pair = {r.continuous[0]: r.distance_m for r in mine if r.continuous}
                assert abs(pair["S"] - scene.start_m) <= 0.3 and abs(pair["F"] - scene.end_m) <= 0.3, (scene, mine)
            else:
                assert len(mine) == 1 and abs(mine[0].distance_m - scene.distance_m) <= 0.3, (scene, mine)


def test_telemetry_of_another_time_span_keeps_the_scores_and_says_so(overlay_video, fp32_export, tmp_path):
    log = tmp_path / "t.csv"
    log.write_text("time_s,distance_m\n100,0\n200,5\n")
    done = hybrid(
        "survey", str(fp32_export[0]), str(overlay_video), "--out", str(tmp_path / "out"), "--telemetry", str(log)
    )
    assert done.returncode == 2 and "the telemetry covers none of its 48 samples" in done.stderr.splitlines()[-1]
    assert len(pd.read_csv(tmp_path / "out" / "frames.csv")) == 48
