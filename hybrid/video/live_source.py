"""A live source that keeps going: a stream URL or camera read in a thread of its own, reopened
when it ends, stalls or breaks, on one monotonic clock; the scorer takes samples from a hand-off
that never lets it fall far behind the camera.

Reading (:class:`LiveSource`, in the reader thread). Frames are sampled at ``fps`` by *stream
time*: seconds on one clock that starts at ``start_s`` and never goes back. Each stretch of frames
with continuous timestamps is a *segment*; its frames are sampled on its own grid (its first frame,
then every ``1 / fps`` of its own timestamps, as :class:`~hybrid.video.sampling.SampledFrames` samples
a file), so no sample of a restarted stream is skipped. A segment ends when the source ends,
stalls for ``timeout_s``, fails to decode, or its timestamps jump back (a camera or encoder
restart) or forward by more than ``timeout_s`` (an MPEG-TS discontinuity); the next segment starts
on the clock where the last one stopped plus the wall-clock time that passed, so stream time stays
monotonic and the gap is as long as it really was. A source that ends is reopened with backoff
(:data:`RECONNECT_FIRST_S` doubling to :data:`RECONNECT_MAX_S`) for as long as the caller reads
(the caller decides when to give up: a reader blocked on a silent socket cannot). A file played as
a camera (``realtime``) is not reopened: its end is the end.

The reader yields, in order: :class:`Sample` (a sampled frame), :class:`Break` (the segment
stopped: close what is open), :class:`Gap` (the next segment started: from where to where, and
why), and :class:`End` (a file's end, or ``stop`` set).

Handing over (:class:`SampleHandoff`). The scorer takes samples in order while it keeps up; when
the oldest waiting sample has waited more than ``max_lag_s`` it takes the newest and skips the
rest (counted), so a model slower than ``fps`` stays at most ``max_lag_s`` plus one scoring behind
the camera instead of queueing without bound. Breaks, gaps and the end are never skipped.

Decoding only what sampling needs: when the stream's frame rate is at least
:data:`~hybrid.video.sampling.SKIP_NONREF_RATIO` times ``fps``, frames no other frame refers to are
not decoded (:func:`~hybrid.video.sampling.decode_only_what_sampling_needs`), and FFmpeg's frame
threading is left off (a file read as fast as it goes wants it; here it cost a fifth more CPU time
for the same frames, and a stream only has to keep up with its camera). Packets the demuxer
flags as corrupt, or the decoder rejects (garbage on the wire), are counted in
``damaged_packets``; the decoder conceals or skips them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hybrid.errors import DataError
from hybrid.video.sampling import (
    TIME_EPSILON,
    decode_only_what_sampling_needs,
    next_sample_time,
    open_video,
    pixel_format,
)

# Reopening a source that ended: the first wait, doubled each failed try up to the last.
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 5.0
# A new segment starts at least this far after the last frame (the event tracker's sample spacing).
MIN_STEP_S = 1e-3
# Sources without a connection: opened without a timeout (see LiveSource.items).
CONNECTIONLESS = ("udp://", "rtp://")
# Demux errors in a row after which a source is reopened.
MAX_FAILURES_IN_A_ROW = 100


@dataclass
class Sample:
    """A sampled frame: ``index`` counts decoded frames since the run began, ``time_s`` is stream
    time, ``arrived`` the monotonic clock when it was decoded (what ``lag_s`` is measured from)."""

    index: int
    time_s: float
    pixels: object
    arrived: float


@dataclass
class Break:
    """The segment stopped after ``last_s`` (stream time) for ``why``: what is open must close."""

    last_s: float
    why: str


@dataclass
class Gap:
    """Stream time ``from_s`` (the last sample before) to ``to_s`` (the first after) had no frames."""

    from_s: float
    to_s: float
    why: str


@dataclass
class End:
    """The run is done: the reader stopped, a file played as a camera ended, or the scorer gave up
    (``stalled``: no frame came for too long)."""

    why: str
    stalled: bool


@dataclass
class LiveSource:
    """A live source read on one monotonic clock across restarts (module docstring). ``prepare``
    turns each sample's decoded pixels into what the scorer takes (run in the reader thread);
    ``report`` takes a line for the user when the source is lost or back; ``stop`` (an event)
    ends the reading between frames."""

    source: str
    fps: float
    in_channels: int
    timeout_s: float  # hybrid serve's --timeout (LiveSettings declares its default)
    realtime: bool = False
    start_s: float = 0.0
    start_wall: float | None = None  # the wall-clock time (epoch s) of start_s: a run continued
    prepare: Callable = lambda pixels: pixels
    report: Callable[[str], None] = lambda line: None
    stop: threading.Event = field(default_factory=threading.Event)
    problem: str | None = field(default=None, init=False)  # why the source was last lost
    damaged_packets: int = field(default=0, init=False)
    reconnects: int = field(default=0, init=False)

    def __post_init__(self):
        self._clock_s = self.start_s  # stream time of the last frame decoded
        self._wall_of_last = time.monotonic()  # when it was decoded
        self._index = -1
        self._last_sample_s: float | None = None

    def items(self) -> Iterator[Sample | Break | Gap | End]:
        """Samples, breaks and gaps in order, for as long as the caller reads them; :class:`End`
        only for a file played as a camera, or when ``stop`` is set."""
        wait_s, pending_gap = RECONNECT_FIRST_S, None
        connectionless = self.source.lower().startswith(CONNECTIONLESS)
        while not self.stop.is_set():
            try:
                # a socket without a connection waits for data as long as it takes (the caller gives
                # up): a timeout there could cut the probing of a camera that just started, and
                # FFmpeg keeps that error for the rest of the connection
                opened = open_video(self.source, timeout_s=None if connectionless else self.timeout_s,
                                    read_timeout_s=self.timeout_s)  # fmt: skip
            except DataError as err:
                if self.realtime:
                    yield End(str(err), stalled=False)
                    return
                self.problem = str(err)
                self.report(f"{err}; trying again in {wait_s:g} s")
                self.stop.wait(wait_s)
                wait_s = min(2 * wait_s, RECONNECT_MAX_S)
                continue
            if self.problem is not None:
                self.report(f"{self.source}: open again")
            self._got_frames = False
            why = yield from self._read(opened, pending_gap)
            if self._got_frames:
                wait_s, pending_gap = RECONNECT_FIRST_S, why
            else:  # the first reason a stream went away names the gap, not the failed tries after it
                pending_gap = pending_gap or why
            if why is None or self.realtime:  # stopped by the caller, or a file's end
                yield End(why or "stopped", stalled=False)
                return
            self.problem = why
            self.reconnects += 1
            self.report(f"{why}; reopening")
        yield End("stopped", stalled=False)

    def _read(self, container, pending_gap: str | None):
        """Decode one connection's frames; returns why it stopped (``None``: asked to stop).

        A packet that fails to demux or decode is counted and passed over. A source silent for
        ``timeout_s`` has the frames its decoder still holds handed out (a stream that stops
        leaves its last frames there, as MPEG-TS over UDP has no end to flush them), then is
        closed and reopened at once: a ``udp://`` socket is bound again within microseconds, so a
        camera that starts again is heard from its first packet."""
        import av

        stream = container.streams.video[0]
        decode_only_what_sampling_needs(stream, self.fps)
        self._base, self._pending_gap, self._segment_open = None, pending_gap, False
        failures = 0  # demux errors in a row: a source that only fails is reopened
        try:
            while True:
                try:
                    for packet in container.demux(stream):
                        if self.stop.is_set():
                            return None
                        failures = 0
                        yield from self._frames(self._decoded(packet))
                    why = f"{self.source}: the stream ended after {self._clock_s:.2f} s"
                except av.error.ExitError:
                    why = f"{self.source}: no frame for {self.timeout_s:g} s after {self._clock_s:.2f} s"
                    yield from self._frames(self._flushed(stream))
                except av.error.InvalidDataError:
                    self.damaged_packets, failures = self.damaged_packets + 1, failures + 1
                    if failures < MAX_FAILURES_IN_A_ROW:
                        continue
                    why = f"{self.source}: {failures} unreadable packets in a row after {self._clock_s:.2f} s"
                except av.error.FFmpegError as err:
                    why = (
                        f"{self.source}: decoding stopped after {self._clock_s:.2f} s ({err.__class__.__name__}: {err})"
                    )
                break
        finally:
            container.close()
        yield from self._break(why)
        return why

    def _break(self, why: str):
        """End the open segment (a :class:`Break` once), the next sample's gap named by ``why``."""
        if self._segment_open:
            yield Break(self._clock_s, why)
        self._segment_open, self._base = False, None
        self._pending_gap = self._pending_gap or why

    def _decoded(self, packet) -> list:
        """The frames one packet decodes to (none from a packet the decoder rejects: counted)."""
        import av

        if packet.is_corrupt:
            self.damaged_packets += 1
        try:
            return packet.decode()
        except av.error.InvalidDataError:
            self.damaged_packets += 1
            return []

    def _flushed(self, stream) -> list:
        """The frames the decoder still holds (the end of a stream that went silent)."""
        import av

        try:
            frames = stream.codec_context.decode(None)
        except av.error.FFmpegError:
            return []
        for frame in frames:  # decoded outside a packet: no time base of their own
            frame.time_base = stream.time_base
        return frames

    def _frames(self, frames):
        """The samples (and breaks, gaps) ``frames`` make."""
        for frame in frames:
            if frame.time is None:
                continue
            if self._base is not None:
                step = float(frame.time) - self._base - self._local_last
                if step < -TIME_EPSILON or step > self.timeout_s:  # back, or far ahead: a new segment
                    last = self._local_last + self._base
                    yield from self._break(f"{self.source}: timestamps jumped from {last:.2f} to {frame.time:.2f} s")
            if self._base is None:  # a new segment: its first frame, on the clock after the last one
                self._base, self._target = float(frame.time), 0.0
                self._segment_offset, self._segment_wall = self._next_segment_start(), time.monotonic()
            local = float(frame.time) - self._base
            self._local_last, self._index, self._got_frames = local, self._index + 1, True
            self._clock_s, self._wall_of_last = self._segment_offset + local, time.monotonic()
            if local < self._target - TIME_EPSILON:
                continue
            if self.realtime:  # a file as a camera: its frames are not there before their time
                time.sleep(max(0.0, local - (time.monotonic() - self._segment_wall)))
            if self._pending_gap is not None and self._last_sample_s is not None:
                yield Gap(self._last_sample_s, self._clock_s, self._pending_gap)
            self._pending_gap, self._segment_open, self._last_sample_s = None, True, self._clock_s
            pixels = self.prepare(frame.to_ndarray(format=pixel_format(self.in_channels)))
            yield Sample(self._index, self._clock_s, pixels, time.monotonic())
            self._target = next_sample_time(local, self.fps)

    def _next_segment_start(self) -> float:
        """Where a new segment starts on the clock: the first segment of the run at ``start_s``
        (plus the wall-clock time since ``start_wall``, for a run continued); a later one after the
        last frame plus the wall-clock time since it."""
        if self._index < 0:
            if self.start_wall is None:
                return self.start_s
            return self.start_s + max(time.time() - self.start_wall, MIN_STEP_S)
        return self._clock_s + max(time.monotonic() - self._wall_of_last, MIN_STEP_S)


class SampleHandoff:
    """What the reader thread hands the scorer (module docstring): samples in order while the
    scorer keeps up, the newest when the oldest has waited more than ``max_lag_s``; markers
    (:class:`Break`, :class:`Gap`, :class:`End`) always, in order. ``skipped`` counts samples
    passed over; ``capacity`` bounds the samples held (the oldest go first)."""

    def __init__(self, max_lag_s: float, capacity: int = 256):
        self.max_lag_s, self.capacity = max_lag_s, capacity
        self.skipped = 0
        self._items: deque = deque()
        self._samples = 0  # how many of _items are samples
        self._ready = threading.Condition()

    def put(self, item) -> None:
        """Hand over one item (the reader thread)."""
        with self._ready:
            self._items.append(item)
            self._samples += isinstance(item, Sample)
            if self._samples > self.capacity:
                self._drop_oldest_sample()
            self._ready.notify()

    def take(self, timeout_s: float):
        """The next item for the scorer, or ``None`` after ``timeout_s`` without one."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._items, timeout_s):
                return None
            self._skip_stale(time.monotonic())
            item = self._items.popleft()
            self._samples -= isinstance(item, Sample)
            return item

    def _skip_stale(self, now: float) -> None:
        """When the oldest waiting sample is older than ``max_lag_s``: drop every sample before the
        newest one that precedes the next marker (a marker is never crossed)."""
        head = self._items[0]
        if not isinstance(head, Sample) or now - head.arrived <= self.max_lag_s:
            return
        run = 0
        while run < len(self._items) and isinstance(self._items[run], Sample):
            run += 1
        for _ in range(run - 1):
            self._items.popleft()
        self._samples -= run - 1
        self.skipped += run - 1

    def _drop_oldest_sample(self) -> None:
        for position, item in enumerate(self._items):
            if isinstance(item, Sample):
                del self._items[position]
                self._samples -= 1
                self.skipped += 1
                return


def read_in_background(source: LiveSource, handoff: SampleHandoff) -> threading.Thread:
    """Start the reader thread: every item of ``source`` into ``handoff``; an unexpected error ends
    the source with its message (the scorer closes what is open, nothing is lost silently)."""

    def read() -> None:
        try:
            for item in source.items():
                handoff.put(item)
        except Exception as err:  # handed to the scorer as the end, with its message
            handoff.put(End(f"{source.source}: reading failed ({err.__class__.__name__}: {err})", stalled=True))

    thread = threading.Thread(target=read, name="live-reader", daemon=True)
    thread.start()
    return thread
