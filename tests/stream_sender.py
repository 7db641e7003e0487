"""A stand-in for a robot's camera stream in tests: a video file remuxed (no re-encoding) to
MPEG-TS and sent to a URL with PyAV, as ``ffmpeg -re -i VIDEO -c copy -f mpegts URL`` would.

    python -m tests.stream_sender VIDEO URL [--realtime] [--stop-after-s S]

``--realtime`` paces packets by their timestamps; ``--stop-after-s`` stops sending (the
connection left open, then closed after a pause) to play a stream that stalls.
"""

from __future__ import annotations

import argparse
import time

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


def send(video: str, url: str, *, realtime: bool, stop_after_s: float | None = None, retry_s: float = 20.0) -> int:
    """Send ``video``'s packets to ``url``; returns how many were sent."""
    source = av.open(video)
    stream = source.streams.video[0]
    output, out_stream = open_output(url, stream, retry_s)
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
            if realtime:
                time.sleep(max(0.0, (at - first) - (time.monotonic() - started)))
            packet.stream = out_stream
            output.mux(packet)
            sent += 1
    finally:
        output.close()
        source.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("url")
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--stop-after-s", type=float, default=None)
    args = parser.parse_args()
    send(args.video, args.url, realtime=args.realtime, stop_after_s=args.stop_after_s)


if __name__ == "__main__":
    main()
