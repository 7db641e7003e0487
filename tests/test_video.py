"""Inspection videos: sampling by timestamp, bad files, the video run's outputs and the CCTV-Pipe
scorer, on synthetic videos made here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.synthetic.pipe_videos import (
    DEFECT_TRUTH_FILE,
    SEGMENTS_FILE,
    TRUTH_FILE,
    VideoSpec,
    frame_times,
    generate,
)
from hybrid.data.transforms import build_transform
from hybrid.engine.video_outputs import timeline_figure
from hybrid.errors import DataError
from hybrid.inference.video_input import truth_beside
from hybrid.video.frames_dataset import VideoFrames
from hybrid.video.sampling import find_videos
from tests.conftest import ROOT, run_script, tiny_overrides
from tests.test_tracking import of_type, offline_env, read_offline_run

SMALL = {"width": 160, "height": 120, "fps": 10.0}


def sampled(path: Path, fps: float) -> VideoFrames:
    frames = VideoFrames(path, fps, build_transform(32, 3))
    assert all(item["image"].shape == (3, 32, 32) for item in frames)
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Two 12 s synthetic videos with their truth."""
    return generate(tmp_path_factory.mktemp("videos"), VideoSpec(videos=2, duration_s=12.0, **SMALL))


def test_synthetic_videos_come_with_their_truth(videos):
    assert [p.name for p in find_videos(videos)] == ["pipe_001.mp4", "pipe_002.mp4"]
    segments = pd.read_csv(videos / SEGMENTS_FILE)
    truth = json.loads((videos / TRUTH_FILE).read_text())["database"]
    assert len(segments) == sum(len(v["annotations"]) for v in truth.values()) > 0
    first = segments.iloc[0]
    moment = truth[first.video]["annotations"][0]["moment"]
    assert moment == pytest.approx((first.start_s + first.end_s) / 2, abs=1e-3)
    assert (segments.start_s >= 3.0 - 1e-9).all() and (segments.end_s <= 12.0 - 3.0 + 1e-9).all()  # normal at both ends
    defects = json.loads((videos / DEFECT_TRUTH_FILE).read_text())["database"]
    assert {a["label"] for v in defects.values() for a in v["annotations"]} == {"Defect"}


def test_videos_sharing_a_stem_keep_apart():
    from hybrid.video.sampling import video_names

    paths = [Path("site_a/pipe.mp4"), Path("site_b/pipe.mp4"), Path("site_b/other.mkv")]
    assert video_names(paths) == ["site_a_pipe", "site_b_pipe", "other"]


def test_frames_are_sampled_by_timestamp(videos):
    frames = sampled(videos / "pipe_001.mp4", 4.0)
    # 10 frames/s source, under SKIP_NONREF_RATIO frames per sample: every frame is decoded, and
    # each sample is the first frame at or after k / 4 s
    expected = np.ceil(np.arange(0, 12, 0.25) * 10 - 1e-9) / 10
    assert frames.times == pytest.approx(expected) and len(frames.times) == len(frames) == 48
    assert frames.frame_indices[:4] == [0, 3, 5, 8] and frames.problem is None


def test_sampling_well_below_the_frame_rate_leaves_unreferenced_frames_undecoded(videos):
    """2 samples/s of 10 frames/s (5 a sample, at least SKIP_NONREF_RATIO): frames no other frame
    refers to are not decoded, so a sample is the first decoded frame at or after k / 2 s, a frame
    or two later where that frame was skipped (x264 puts at most two unreferenced frames in a row)."""
    from hybrid.video.sampling import SKIP_NONREF_RATIO

    assert 10.0 / 2.0 >= SKIP_NONREF_RATIO
    frames = sampled(videos / "pipe_001.mp4", 2.0)
    grid = np.arange(0, 12, 0.5)
    times = np.asarray(frames.times)
    assert len(times) == len(frames) == 24 and frames.problem is None
    assert np.allclose(times * 10, np.round(times * 10))  # frames of the file
    assert (times >= grid - 1e-6).all() and (times <= grid + 0.2 + 1e-6).all()
    assert not np.allclose(times, grid)  # some sampled frames were skipped ones: their next was taken
    assert frames.frame_indices == [round(t * 10) for t in times]  # estimated from the time


def test_variable_frame_rate_timing(tmp_path):
    spec = VideoSpec(videos=1, duration_s=4.0, vfr=True, **SMALL)
    generate(tmp_path, spec)
    stored = np.round(frame_times(spec), 3)  # the file keeps millisecond timestamps
    frames = sampled(tmp_path / "pipe_001.mp4", 4.0)  # 2.5 frames a sample: every frame decoded
    expected = [stored[np.argmax(stored >= k / 4 - 1e-9)] for k in range(16)]
    assert frames.times == pytest.approx(expected, abs=1e-6)
    assert frames.frame_indices[1] == int(np.argmax(stored >= 0.25))  # counted, not estimated: no seek here


def test_a_distant_next_sample_is_reached_by_seeking(videos):
    frames = sampled(videos / "pipe_002.mp4", 0.2)  # every 5 s: past SEEK_AFTER_S, so it seeks
    times = np.asarray(frames.times)
    assert len(times) == 3 and (times >= [0, 5, 10]).all() and (times <= [0.2, 5.2, 10.2]).all(), times
    assert frames.frame_indices == [round(t * 10) for t in times]


def test_a_truncated_video_keeps_its_frames_up_to_the_break(videos, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = (videos / "pipe_001.mp4").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    frames = sampled(cut, 2.0)
    assert 0 < len(frames.times) < 24 and frames.problem is not None
    last = f"{max(frames.times):.2f}"
    assert last in frames.problem or "truncated" in frames.problem


def test_a_file_that_is_no_video_is_one_clear_error(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    with pytest.raises(DataError, match=r"notes.mp4: not a readable video"):
        VideoFrames(fake, 2.0, build_transform(32, 3))


@pytest.fixture(scope="module")
def binary_model(tiny_data, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("video_model")
    result = run_script("train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir / "checkpoints" / "best.pt"


def test_video_run_writes_frames_events_and_plots(binary_model, videos, tmp_path):
    out = tmp_path / "run"
    # threshold 0.05: a model this small finds events anywhere, so every output is exercised
    result = run_script(
        "infer.py", f"ckpt_path={binary_model}", f"input={videos}", "video.threshold=0.05", f"hydra.run.dir={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames = pd.read_csv(out / "frames.csv")
    assert list(frames.columns) == ["video", "frame_index", "time_s", "Normal", "Defect", "prediction"]
    assert frames.groupby("video").size().to_dict() == {"pipe_001": 24, "pipe_002": 24}
    events = pd.read_csv(out / "events.csv")
    assert list(events.columns) == ["video", "label", "start_s", "end_s", "peak_s", "peak_score", "mean_score"]
    assert len(events) and (events.label == "Defect").all() and (events.end_s - events.start_s >= 1.0).all()
    assert ((events.start_s <= events.peak_s) & (events.peak_s < events.end_s)).all()
    results = json.loads((out / "events.json").read_text())["results"]
    assert set(results) == {"pipe_001", "pipe_002"}
    first = events.iloc[0]
    assert {
        "label": "Defect",
        "moment": round(first.peak_s, 3),
        "score": pytest.approx(first.peak_score, abs=1e-4),
    } in [{**r, "score": pytest.approx(r["score"], abs=1e-4)} for r in results[first.video]]
    for video in ("pipe_001", "pipe_002"):
        assert (out / video / "timeline.png").stat().st_size > 0
    assert (out / events.iloc[0].video / "keyframes.png").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["video/num_videos"] == 2 and metrics["video/num_frames"] == 48
    assert metrics["video/num_events"] == len(events) and metrics["video/realtime_factor"] > 0
    # the events score with the CCTV-Pipe metric against the generator's truth
    scored = tmp_path / "scores.json"
    done = subprocess.run(
        [sys.executable, "-m", "hybrid.jobs.evaluate_video", f"predictions={out / 'events.json'}",
         f"labels={videos / DEFECT_TRUTH_FILE}", f"output={scored}", f"hydra.run.dir={tmp_path / 'ev'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(scored.read_text())
    assert {"map@5", "map@10", "map@15", "map", "ap@5/Defect"} <= set(figures)
    assert figures["map"] == pytest.approx((figures["map@5"] + figures["map@10"] + figures["map@15"]) / 3)


@pytest.mark.slow
def test_bad_videos_in_a_folder_are_named_and_the_rest_goes_on(binary_model, videos, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_good.mp4").write_bytes((videos / "pipe_001.mp4").read_bytes())
    data = (videos / "pipe_002.mp4").read_bytes()
    (folder / "b_cut.mp4").write_bytes(data[: len(data) // 2])
    (folder / "c_fake.mp4").write_text("not a video\n")
    out = tmp_path / "run"
    result = run_script("infer.py", f"ckpt_path={binary_model}", f"input={folder}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "infer.log").read_text()
    assert "b_cut.mp4:" in log and ("truncated" in log or "decoding stopped after" in log)
    assert "c_fake.mp4: not a readable video" in log and "skipped" in log
    frames = pd.read_csv(out / "frames.csv")
    assert set(frames.video) == {"a_good", "b_cut"} and (frames.video == "a_good").sum() == 24
    assert json.loads((out / "metrics.json").read_text())["video/failed_videos"] == 1
    # one video that cannot be decoded: one line, exit 2, and what was written before stays
    single = run_script(
        "infer.py", f"ckpt_path={binary_model}", f"input={folder / 'c_fake.mp4'}", f"hydra.run.dir={out}"
    )
    assert single.returncode == 2
    lines = [line for line in (single.stdout + single.stderr).splitlines() if "c_fake.mp4" in line]
    assert len(lines) == 1 and "not a readable video" in lines[0] and "Traceback" not in single.stderr
    assert len(pd.read_csv(out / "frames.csv")) == len(frames)


@pytest.mark.slow  # the video outputs themselves are checked in the default suite
def test_video_timelines_and_events_reach_wandb(binary_model, videos, tmp_path):
    out = tmp_path / "run"
    result = run_script(
        "infer.py", f"ckpt_path={binary_model}", f"input={videos / 'pipe_001.mp4'}", "video.threshold=0.05",
        "logger=wandb", f"hydra.run.dir={out}", env=offline_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records, summary = read_offline_run(out)
    logged = {key.split(".")[0] for item in (h["item"] for h in of_type(records, "history")) for key in item}
    assert {"video/pipe_001/timeline", "video/events"} <= logged
    assert summary["summary"]["video/num_frames"] == 24


def test_truth_that_names_videos_by_file_name_is_matched_and_other_names_are_said(videos, tmp_path, caplog):
    """A truth.json / segments.csv keyed by the file name (pipe_001.mp4, as people write it) is the
    video's truth as the stem-keyed one is; truth naming only other videos is one warning line."""
    folder = tmp_path / "by_name"
    folder.mkdir()
    shutil.copy(videos / "pipe_001.mp4", folder / "pipe_001.mp4")
    truth = json.loads((videos / DEFECT_TRUTH_FILE).read_text())
    truth["database"] = {f"{name}.mp4": entry for name, entry in truth["database"].items()}
    (folder / DEFECT_TRUTH_FILE).write_text(json.dumps(truth))
    segments = pd.read_csv(videos / SEGMENTS_FILE)
    segments.assign(video=segments.video + ".mp4").to_csv(folder / SEGMENTS_FILE, index=False)
    by_stem = truth_beside(videos / "pipe_001.mp4", ["Defect"])
    by_name = truth_beside(folder / "pipe_001.mp4", ["Defect"])
    assert by_name.moments == by_stem.moments and by_name.segments == by_stem.segments and by_name.moments
    shutil.copy(videos / "pipe_001.mp4", folder / "other.mp4")
    with caplog.at_level("WARNING"):
        assert truth_beside(folder / "other.mp4", ["Defect"]) is None
    warned = [r.getMessage() for r in caplog.records]
    assert any(f"{DEFECT_TRUTH_FILE}: no entry for other.mp4 (it names pipe_001.mp4" in m for m in warned)
    assert any(f"{SEGMENTS_FILE}: no entry for other.mp4" in m for m in warned), warned


def test_timelines_show_the_truth_that_lies_beside_the_video(videos):
    """The synthetic truth beside the videos: a binary model's timeline takes truth_defect.json
    (its labels are the model's), a multi-label one truth.json's codes; segments.csv gives spans."""
    segments = pd.read_csv(videos / SEGMENTS_FILE)
    first = segments[segments.video == "pipe_001"]
    binary = truth_beside(videos / "pipe_001.mp4", ["Defect"])
    assert binary.source == DEFECT_TRUTH_FILE and {label for label, _ in binary.moments} == {"Defect"}
    assert len(binary.segments) == len(first)  # no code is the model's: every true segment shown
    codes = truth_beside(videos / "pipe_001.mp4", [str(first.label.iloc[0]), "RB"])
    assert codes.source == TRUTH_FILE
    assert {label for label, _ in codes.moments} <= {str(first.label.iloc[0]), "RB"}
    assert truth_beside(Path("/nowhere/pipe.mp4"), ["Defect"]) is None

    times = np.arange(0, 12, 0.5)
    fig = timeline_figure("pipe_001", times, {"Defect": np.full(len(times), 0.2)}, [], {"Defect": 0.5}, truth=binary)
    ax = fig.axes[0]
    drawn = [line for line in ax.get_lines() if line.get_label().startswith("truth")]
    assert len(drawn) == 1 and sorted(drawn[0].get_xdata()) == sorted(m for _, m in binary.moments)
    assert len(ax.collections) == len(binary.segments)  # one bar per true segment
    assert ax.get_ylim()[0] < 0 and "truth" in ax.get_title()
