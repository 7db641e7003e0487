"""A robot that keeps going: live ``hybrid serve`` under the faults a robot meets, injected over
loopback streams (``tests/stream_sender.py``), each test asserting what was written.

Quick: a camera that restarts (TCP, the robot listening), timestamps that reset in one
connection, SIGTERM mid-event (and a second signal while closing), ``kill -9`` then a restart in
place, refusals, a refused connection. Slow (``-m slow``): the same restart over UDP in real time
(the acceptance run), the robot connecting to a camera that restarts, garbage datagrams, a model
three times slower than the sampling interval for 60 s. Units: the hand-off between reader and
scorer, the journal's torn end, the systemd unit.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid.data.synthetic.pipe_videos import VideoSpec, generate
from hybrid.util.journal import CsvJournal, last_row
from hybrid.video.live_source import Break, Sample, SampleHandoff
from tests.conftest import ROOT
from tests.test_serve import SERVE, free_port, hybrid, offline, printed, send_stream, start_hybrid, video  # noqa: F401

UNIT = ROOT / "deploy" / "hybrid-serve.service"
STEP_S = 0.5  # one sample at the default --fps 2


def serve(model, source: str, out: Path, *flags: str, **popen) -> subprocess.Popen:
    return start_hybrid("serve", str(model), source, "--out", str(out), *flags, **popen)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return stdout, stderr


def gaps(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "gaps.csv")


def assert_no_event_spans(events: pd.DataFrame, gap_rows: pd.DataFrame) -> None:
    """Every event lies wholly before or wholly after every gap (its end is one sample past its last frame)."""
    for gap in gap_rows.itertuples():
        for event in events.itertuples():
            assert event.end_s <= gap.from_s + STEP_S + 1e-3 or event.start_s >= gap.to_s - 1e-3, (event, gap)


def assert_events_after_are_the_offline_ones(events: pd.DataFrame, offline_events: pd.DataFrame, start_s: float):
    """The events from ``start_s`` on, moved back by it, are the offline events of the file: start
    and end within one sample."""
    after = events[events.start_s >= start_s - 1e-3]
    assert len(after) == len(offline_events), (after, offline_events)
    for got, want in zip(after.itertuples(), offline_events.itertuples(), strict=True):
        assert got.label == want.label
        assert abs(got.start_s - start_s - want.start_s) <= STEP_S + 1e-3, (got, want)
        assert abs(got.end_s - start_s - want.end_s) <= STEP_S + 1e-3, (got, want)


# --- units ----------------------------------------------------------------------------------------


def sample(index: int, arrived: float) -> Sample:
    return Sample(index, index * STEP_S, None, arrived)


def test_the_handoff_keeps_order_while_the_scorer_keeps_up_and_skips_to_the_newest_when_behind():
    now = time.monotonic()
    handoff = SampleHandoff(max_lag_s=1.0)
    for index in range(3):
        handoff.put(sample(index, now))
    assert [handoff.take(0.1).index for _ in range(3)] == [0, 1, 2] and handoff.skipped == 0
    for index in range(3, 6):  # waited 5 s: the scorer fell behind
        handoff.put(sample(index, now - 5))
    handoff.put(Break(2.5, "the stream ended"))  # never skipped, never crossed
    handoff.put(sample(6, now - 5))
    assert handoff.take(0.1).index == 5 and handoff.skipped == 2
    assert isinstance(handoff.take(0.1), Break)
    assert handoff.take(0.1).index == 6  # the newest after the break, stale or not
    assert handoff.take(0.05) is None


def test_a_journal_appends_whole_lines_cuts_a_torn_end_and_refuses_other_columns(tmp_path):
    path = tmp_path / "frames.csv"
    journal = CsvJournal(path, ["video", "time_s"], sync_every_s=1.0)
    journal.append([["a", "0.5"], ["b, c", "1"]])
    journal.close()
    assert path.read_text() == 'video,time_s\na,0.5\n"b, c",1\n'
    with open(path, "a") as handle:
        handle.write("d,1.")  # a power cut in the middle of a line
    assert last_row(path) == ["b, c", "1"]  # where a continued run resumes: the last whole row
    again = CsvJournal(path, ["video", "time_s"], sync_every_s=1.0)
    assert again.dropped_bytes == 4
    again.append([["e", "2"]])
    again.close()
    assert path.read_text() == 'video,time_s\na,0.5\n"b, c",1\ne,2\n'
    with pytest.raises(Exception, match="its columns are not video, score"):
        CsvJournal(path, ["video", "score"], sync_every_s=1.0)


def unit_file() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT)
    return unit


def test_the_systemd_unit_restarts_on_failure_stops_with_sigterm_and_runs_hybrid_serve(tmp_path):
    """The unit docs/robot.md gives: its keys, its ExecStart parsed by hybrid serve's own parser,
    and ``systemd-analyze verify`` where the machine has it (ExecStart pointed at a stand-in)."""
    from hybrid.jobs.serve import parser

    unit = unit_file()
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= 10 and int(service["WatchdogSec"]) >= 5
    command = service["ExecStart"].split()
    assert command[0].endswith("/bin/hybrid") and command[1] == "serve"
    args = parser().parse_args(command[2:])
    assert args.out and args.input.startswith(("udp://", "tcp://", "rtsp://", "/dev/video"))
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    stand_in = tmp_path / "hybrid"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    copy = tmp_path / "hybrid-serve.service"
    copy.write_text(UNIT.read_text().replace(command[0], str(stand_in)))
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in verified.stderr.splitlines() if "hybrid-serve.service" in line]
    assert verified.returncode == 0 and not problems, verified.stderr


# --- quick faults ---------------------------------------------------------------------------------


def test_a_camera_that_restarts_is_one_run_with_a_gap(fp32_export, video, offline, tmp_path):  # noqa: F811
    """TCP, the robot listening: the camera sends 8 s, stops, and 2 s later starts again from the
    start of the video on a new connection. One run: every sample of both streams scored, the
    gap printed and recorded, no event across it, the second stream's events the offline ones."""
    port, out = free_port(), tmp_path / "live"
    served = serve(
        fp32_export[0], f"tcp://127.0.0.1:{port}?listen=1", out, "--threshold", offline["threshold"],
        "--timeout", "5", "--give-up-s", "4", "--max-lag-s", "60",
    )  # fmt: skip
    sender = send_stream(video, f"tcp://127.0.0.1:{port}", "--cut-after-s", "8", "--then", str(video), "--pause-s", "2")
    stdout, stderr = finish(served)
    assert sender.wait(timeout=30) == 0
    assert served.returncode == 1 and "gave up" in stderr.splitlines()[-1], stderr
    frames, offline_frames = pd.read_csv(out / "frames.csv"), pd.read_csv(offline["out"] / "frames.csv")
    assert len(frames) >= (8 + 16) * 2 - 2 and frames.time_s.is_monotonic_increasing
    gap_rows = gaps(out)
    assert len(gap_rows) == 1 and "the stream ended after" in gap_rows.why[0]
    assert printed(stdout, "gap")[0]["to_s"] == pytest.approx(gap_rows.to_s[0], abs=1e-3)
    second = frames[frames.time_s >= gap_rows.to_s[0] - 1e-3]
    assert np.allclose(second.time_s - gap_rows.to_s[0], offline_frames.time_s, atol=1e-3)  # none skipped
    events = pd.read_csv(out / "events.csv")
    assert_no_event_spans(events, gap_rows)
    assert_events_after_are_the_offline_ones(events, offline["events"], gap_rows.to_s[0])


def test_timestamps_that_reset_in_one_connection_start_a_new_segment(fp32_export, video, offline, tmp_path):  # noqa: F811
    """The video twice in one TCP connection, its timestamps starting over (an encoder restarted
    behind a relay): a gap named as such, every sample of both scored, the second's events offline's."""
    port, out = free_port(), tmp_path / "live"
    served = serve(
        fp32_export[0], f"tcp://127.0.0.1:{port}?listen=1", out, "--threshold", offline["threshold"],
        "--timeout", "5", "--give-up-s", "2", "--max-lag-s", "60",
    )  # fmt: skip
    sender = send_stream(video, f"tcp://127.0.0.1:{port}", "--reset-timestamps", "--then", str(video))
    _, stderr = finish(served)
    assert sender.wait(timeout=30) == 0, stderr
    frames, offline_frames = pd.read_csv(out / "frames.csv"), pd.read_csv(offline["out"] / "frames.csv")
    assert len(frames) == 2 * len(offline_frames) and frames.time_s.is_monotonic_increasing
    gap_rows = gaps(out)
    assert len(gap_rows) == 1 and "timestamps jumped" in gap_rows.why[0], gap_rows
    events = pd.read_csv(out / "events.csv")
    assert_no_event_spans(events, gap_rows)
    assert_events_after_are_the_offline_ones(events, offline["events"], gap_rows.to_s[0])


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    return sock, path


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return messages


def test_sigterm_mid_event_closes_it_and_a_second_signal_cannot_cut_that_short(fp32_export, video, tmp_path):  # noqa: F811
    """A file played as a camera at a threshold every frame reaches (an event open from the first
    frame): SIGTERM, then Ctrl-C while it closes. Exit 0, the event closed at the last sample and in
    events.csv and events.json; systemd was told READY, WATCHDOG and STOPPING."""
    out = tmp_path / "live"
    sock, address = notify_socket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": address}
    served = serve(fp32_export[0], str(video), out, "--realtime", "--threshold", "0.01", env=env)
    time.sleep(5)
    served.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    served.send_signal(signal.SIGINT)
    stdout, stderr = finish(served)
    assert served.returncode == 0 and "stopped (SIGTERM)" in stderr.splitlines()[-1], stderr
    frames, events = pd.read_csv(out / "frames.csv"), pd.read_csv(out / "events.csv")
    assert len(frames) >= 4 and len(events) == 1
    assert events.start_s[0] == 0 and events.end_s[0] == pytest.approx(frames.time_s.iloc[-1] + STEP_S, abs=0.15)
    assert printed(stdout, "event")[0]["end_s"] == pytest.approx(events.end_s[0], abs=1e-3)
    moments = json.loads((out / "events.json").read_text())["results"]["pipe_001"]
    assert len(moments) == 1 and moments[0]["moment"] == pytest.approx(events.peak_s[0], abs=1e-3)
    messages = received(sock)
    assert "READY=1" in messages and "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1", messages
    assert (out / "heartbeat").stat().st_mtime >= (out / "frames.csv").stat().st_mtime - 2


def test_kill_9_then_a_restart_in_place_appends_the_next_run(fp32_export, video, tmp_path):  # noqa: F811
    """kill -9 mid-stream: every file whole. hybrid serve started again on the same --out: the
    earlier rows byte for byte, new rows numbered run 2 on the same clock, the restart a gap."""
    out = tmp_path / "live"
    first = serve(fp32_export[0], str(video), out, "--realtime", "--threshold", "0.6")
    time.sleep(4)
    first.kill()
    first.communicate(timeout=30)
    for name in ("frames.csv", "events.csv", "gaps.csv"):
        assert (out / name).read_bytes().endswith(b"\n"), name
    before = {name: (out / name).read_bytes() for name in ("frames.csv", "events.csv", "gaps.csv")}
    old = pd.read_csv(out / "frames.csv")
    assert len(old) >= 4 and (old.run == 1).all()
    second = serve(fp32_export[0], str(video), out, "--realtime", "--threshold", "0.6")
    time.sleep(4)
    second.send_signal(signal.SIGINT)
    stdout, stderr = finish(second)
    assert second.returncode == 0 and "run 2:" in stderr.splitlines()[-1], stderr
    for name, data in before.items():
        assert (out / name).read_bytes().startswith(data), name
    frames = pd.read_csv(out / "frames.csv")
    new = frames[frames.run == 2]
    assert len(new) >= 4 and new.time_s.min() > old.time_s.max() and frames.time_s.is_monotonic_increasing
    restart = gaps(out).iloc[-1]
    assert restart.run == 2 and "started again (run 2)" in restart.why
    assert restart.from_s == pytest.approx(old.time_s.max(), abs=1e-3)
    assert restart.to_s == pytest.approx(new.time_s.min(), abs=1e-3)
    assert [run["run"] for run in json.loads((out / "live.json").read_text())["runs"]] == [1, 2]
    assert printed(stdout, "gap")[0]["why"] == restart.why


def test_a_folder_of_another_model_or_of_an_offline_run_is_refused(fp32_export, offline, tmp_path):  # noqa: F811
    import onnx

    other = tmp_path / "other.onnx"  # the same network, another file (another export)
    model = onnx.load(str(fp32_export[0]))
    model.doc_string = "another export"
    onnx.save(model, str(other))
    live = tmp_path / "live"
    live.mkdir()
    (live / "live.json").write_text(json.dumps({"model": "m.onnx", "model_sha256": "0" * 64, "runs": []}))
    udp = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    for folder, message in ((offline["out"], "of an offline run"), (live, "holds a live run of another model")):
        before = sorted(p.name for p in folder.iterdir())
        result = hybrid("serve", str(other), udp, "--out", str(folder), "--give-up-s", "1")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert sorted(p.name for p in folder.iterdir()) == before


def test_a_refused_connection_is_named_and_tried_again_until_give_up(fp32_export, tmp_path):
    result = hybrid(
        "serve", str(fp32_export[0]), f"tcp://127.0.0.1:{free_port()}", "--out", str(tmp_path / "live"),
        "--timeout", "1", "--give-up-s", "2",
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "connection refused" in lines[1] and "trying again" in lines[1], result.stderr
    assert "gave up" in lines[-1] and "not a readable video" not in result.stderr
    assert not (tmp_path / "live").exists()


# --- slow faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_acceptance_a_udp_camera_stopped_for_4_s_then_another_stream(fp32_export, video, offline, tmp_path):  # noqa: F811
    """The issue's run: 12 s streamed in real time over UDP, the sender stopped 4 s, then the video
    from its start: every sample of both scored, no event across the gap, the second stream's
    events the offline ones."""
    port, out = free_port(socket.SOCK_DGRAM), tmp_path / "live"
    served = serve(
        fp32_export[0], f"udp://127.0.0.1:{port}", out, "--threshold", offline["threshold"], "--timeout", "2",
        "--give-up-s", "5",
    )  # fmt: skip
    time.sleep(2.0)  # the receiver binds the port before anything is sent
    sender = send_stream(
        video, f"udp://127.0.0.1:{port}?pkt_size=1316", "--realtime", "--cut-after-s", "12", "--then", str(video),
        "--pause-s", "4",
    )  # fmt: skip
    stdout, stderr = finish(served)
    assert sender.wait(timeout=30) == 0
    frames = pd.read_csv(out / "frames.csv")
    assert len(frames) >= (12 + 16) * 2 - 2, (len(frames), stderr)
    gap_rows = gaps(out)
    assert len(gap_rows) == 1 and 3.5 <= gap_rows.to_s[0] - gap_rows.from_s[0] <= 8, gap_rows
    events = pd.read_csv(out / "events.csv")
    assert_no_event_spans(events, gap_rows)
    assert_events_after_are_the_offline_ones(events, offline["events"], gap_rows.to_s[0])
    assert len(printed(stdout, "gap")) == 1


@pytest.mark.slow
def test_the_robot_connecting_to_a_camera_that_restarts(fp32_export, video, offline, tmp_path):  # noqa: F811
    """TCP, the camera listening and the robot connecting: refused while the camera is down, then
    connected again; both streams scored in one run."""
    port, out = free_port(), tmp_path / "live"
    served = serve(
        fp32_export[0], f"tcp://127.0.0.1:{port}", out, "--threshold", offline["threshold"], "--timeout", "2",
        "--give-up-s", "4", "--max-lag-s", "60",
    )  # fmt: skip
    time.sleep(1.5)  # refused at first: the camera is not up yet
    sender = send_stream(
        video, f"tcp://127.0.0.1:{port}?listen=1", "--cut-after-s", "8", "--then", str(video), "--pause-s", "3"
    )
    _, stderr = finish(served)
    assert sender.wait(timeout=30) == 0
    assert "connection refused" in stderr and "open again" in stderr, stderr
    frames = pd.read_csv(out / "frames.csv")
    assert len(frames) >= (8 + 16) * 2 - 2 and len(gaps(out)) == 1


@pytest.mark.slow
def test_damaged_datagrams_are_survived_and_counted(fp32_export, video, offline, tmp_path):  # noqa: F811
    """Datagrams of the video's PID with random payloads mixed into a real-time UDP stream: every
    sample still scored, the damaged packets counted in the end line."""
    port, out = free_port(socket.SOCK_DGRAM), tmp_path / "live"
    served = serve(
        fp32_export[0], f"udp://127.0.0.1:{port}", out, "--threshold", offline["threshold"], "--timeout", "2",
        "--give-up-s", "6",
    )  # fmt: skip
    time.sleep(2.0)
    sender = send_stream(video, f"udp://127.0.0.1:{port}?pkt_size=1316", "--realtime", "--garbage-every", "10")
    _, stderr = finish(served)
    assert sender.wait(timeout=30) == 0
    summary = stderr.splitlines()[-1]
    damaged = int(summary.split(" damaged packets")[0].rsplit(" ", 1)[-1])
    assert damaged > 0, summary
    assert len(pd.read_csv(out / "frames.csv")) >= 16 * 2 - 2


SLOW_MODEL_S = 1.5  # three sampling intervals at --fps 2
SLOW_SERVE = SERVE.replace(
    "from hybrid.commands import main",
    "import time\nfrom hybrid.serve.model import Model\n_predict = Model.predict\n"
    f"Model.predict = lambda self, *a, **k: (time.sleep({SLOW_MODEL_S}), _predict(self, *a, **k))[1]\n"
    "from hybrid.commands import main",
)


@pytest.mark.slow
def test_a_model_three_times_slower_than_sampling_stays_near_the_camera(fp32_export, tmp_path):
    """60 s of stream at --fps 2 through a model that takes 1.5 s a frame: the lag printed with each
    frame stays under --max-lag-s + one scoring + one sample (3 s) to the end instead of growing,
    and the skipped samples are reported."""
    folder = generate(tmp_path / "long", VideoSpec(videos=1, duration_s=62.0, width=160, height=120, fps=10.0))
    out = tmp_path / "live"
    served = serve(fp32_export[0], str(folder / "pipe_001.mp4"), out, "--realtime", "--frames", code=SLOW_SERVE)
    stdout, stderr = finish(served, timeout=240)
    assert served.returncode == 0, stderr
    lags = [frame["lag_s"] for frame in printed(stdout, "frame")]
    bound = 1.0 + SLOW_MODEL_S + STEP_S
    assert len(lags) >= 60 / SLOW_MODEL_S * 0.8 and max(lags) <= bound, (max(lags), lags)
    assert np.mean(lags[-10:]) <= np.mean(lags[:10]) + 0.5, lags
    skipped = int(stderr.splitlines()[-1].split(" samples skipped")[0].rsplit(" ", 1)[-1])
    assert skipped >= 60 * 2 - len(lags) - 4, stderr
    written = pd.read_csv(out / "frames.csv")
    assert len(written) == len(lags) and written.lag_s.max() <= bound
