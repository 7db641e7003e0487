"""A stand-in for a robot's camera stream in tests and benchmarks: a video file remuxed (no
re-encoding) to MPEG-TS and sent to a URL with PyAV, as ``ffmpeg -re -i VIDEO -c copy -f mpegts
URL`` would, with the faults a camera on a robot has.

    python -m tests.stream_sender VIDEO URL [--realtime] [--stop-after-s S] [--then VIDEO2 --pause-s P]
                                           [--garbage-every N] [--reset-timestamps]

- ``--realtime`` paces packets by their timestamps;
- ``--stop-after-s`` stops sending (the connection left open, then closed after a pause): a stall;
- ``--then VIDEO2 --pause-s P``: the sender stops after VIDEO (``--cut-after-s``: after that many
  seconds of it), waits P seconds and sends VIDEO2 from its start, as a new stream (a new
  connection, timestamps from the start again): a camera that restarts;
- ``--garbage-every N`` (``udp://`` only): a damaged datagram after every N packets;
- ``--reset-timestamps`` (``tcp://`` only): VIDEO2 follows VIDEO in the same connection, its
  timestamps starting over (an encoder restarted behind a relay: an MPEG-TS discontinuity).
"""

from __future__ import annotations

import argparse
import io
import random
import socket
import time
from urllib.parse import urlparse

import av


def open_output(url: str, template, retry_s: float):
    """The MPEG-TS output at ``url`` with a stream like ``template``, its header written: retried
    while the receiver is not listening yet (tcp connects on the header)."""
    deadline = time.monotonic() + retry_s
    while True:
        output = av.open(url, mode="w", format="mpegts")
        stream = output.add_stream_from_template(template)
        try:
            output.start_encoding()
            return output, stream
        except (av.error.ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


TS_PACKET = 188
VIDEO_PID = 0x100  # the first stream's PID in FFmpeg's MPEG-TS muxer


def damaged_datagram(rng: random.Random) -> bytes:
    """Seven MPEG-TS packets of the video's PID with random payloads and continuity counters: what
    a datagram damaged on the way looks like to the receiver (bytes without the sync byte are
    skipped by the demuxer without a word, so they are no test of anything)."""
    packets = [
        bytes([0x47, VIDEO_PID >> 8, VIDEO_PID & 0xFF, 0x10 | rng.randrange(16)]) + rng.randbytes(TS_PACKET - 4)
        for _ in range(7)
    ]
    return b"".join(packets)


class Garbage:
    """Damaged datagrams (:func:`damaged_datagram`) to the host and port of a ``udp://`` URL, after
    every ``every`` packets."""

    def __init__(self, url: str, every: int | None):
        self.every, self.count, self.sent = every, 0, 0
        parsed = urlparse(url)
        self.address = (parsed.hostname, parsed.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if every else None
        self.random = random.Random(0)

    def after_packet(self) -> None:
        if not self.every:
            return
        self.count += 1
        if self.count % self.every == 0:
            self.sock.sendto(damaged_datagram(self.random), self.address)
            self.sent += 1


def send(
    video: str, url: str, *, realtime: bool, stop_after_s: float | None = None, cut_after_s: float | None = None,
    retry_s: float = 20.0, garbage_every: int | None = None,
) -> int:  # fmt: skip
    """Send ``video``'s packets to ``url``; returns how many were sent."""
    source = av.open(video)
    stream = source.streams.video[0]
    output, out_stream = open_output(url, stream, retry_s)
    garbage = Garbage(url, garbage_every)
    sent, started, first = 0, time.monotonic(), None
    try:
        for packet in source.demux(stream):
            if packet.dts is None:
                continue
            at = float(packet.pts * stream.time_base) if packet.pts is not None else 0.0
            first = at if first is None else first
            if stop_after_s is not None and at - first > stop_after_s:
                time.sleep(2 * stop_after_s + 5)  # silent with the connection open: a stall
                break
            if cut_after_s is not None and at - first > cut_after_s:
                break
            if realtime:
                time.sleep(max(0.0, (at - first) - (time.monotonic() - started)))
            packet.stream = out_stream
            output.mux(packet)
            sent += 1
            garbage.after_packet()
    finally:
        output.close()
        source.close()
    return sent


def transport_stream(video: str) -> bytes:
    """``video`` remuxed to MPEG-TS in memory (its timestamps as the muxer starts them)."""
    source = av.open(video)
    buffer = io.BytesIO()
    output = av.open(buffer, mode="w", format="mpegts")
    out_stream = output.add_stream_from_template(source.streams.video[0])
    for packet in source.demux(source.streams.video[0]):
        if packet.dts is None:
            continue
        packet.stream = out_stream
        output.mux(packet)
    output.close()
    source.close()
    return buffer.getvalue()


def send_reset(videos: list[str], url: str, retry_s: float = 20.0) -> int:
    """The MPEG-TS of each of ``videos`` one after the other in one TCP connection (each
    starting its timestamps over); returns the bytes sent."""
    parsed = urlparse(url)
    data = b"".join(transport_stream(video) for video in videos)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            with socket.create_connection((parsed.hostname, parsed.port)) as sock:
                sock.sendall(data)
            return len(data)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("url")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--stop-after-s", type=float, default=None)
    parser.add_argument("--cut-after-s", type=float, default=None)
    parser.add_argument("--then", default=None)
    parser.add_argument("--pause-s", type=float, default=0.0)
    parser.add_argument("--garbage-every", type=int, default=None)
    parser.add_argument("--reset-timestamps", action="store_true")
    args = parser.parse_args()
    if args.reset_timestamps:
        send_reset([args.video, args.then], args.url)
        return
    send(args.video, args.url, realtime=args.realtime, stop_after_s=args.stop_after_s, cut_after_s=args.cut_after_s,
         garbage_every=args.garbage_every)  # fmt: skip
    if args.then:
        time.sleep(args.pause_s)
        send(args.then, args.url, realtime=args.realtime, garbage_every=args.garbage_every)


if __name__ == "__main__":
    main()
