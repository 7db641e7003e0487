"""Graceful interruption: SIGTERM (SLURM, ``kill``, torchrun) and SIGINT (Ctrl-C) finish the current
training step instead of killing the run, so it can write a resumable ``last.pt``."""

from __future__ import annotations

import logging
import os
import signal
import threading

from hybrid.engine.hooks import HookBase

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulInterrupt:
    """While active, the first SIGTERM / SIGINT only sets :attr:`signum`; the trainer checks it
    after each optimizer step. A second signal acts as before (Ctrl-C twice aborts at once).
    The previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._pid = os.getpid()

    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell convention for death by signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
        return 128 + int(self.signum or 0)

    @property
    def signal_name(self) -> str:
        """``SIGTERM`` / ``SIGINT``."""
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second signal: behave as without us
            previous = self._previous.get(signum, signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        self.signum = signum
        if os.getpid() != self._pid:  # a forked DataLoader worker inherited the handler: keep working, quietly
            return
        log.warning("%s received: finishing the current step, then saving last.pt", signal.Signals(signum).name)

    def __enter__(self) -> GracefulInterrupt:
        # Handlers can only be set from the main thread (e.g. not in some notebook executors).
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


class InterruptHook(HookBase):
    """Stop signals as a hook: :class:`GracefulInterrupt` is active while fitting (installed before
    the first loader iteration, so DataLoader workers inherit it) and asked after every optimizer
    step; the trainer's error names :attr:`signal_name` and exits with :attr:`exit_code`."""

    def __init__(self):
        self.interrupt = GracefulInterrupt()

    def before_fit(self) -> None:
        self.interrupt.__enter__()

    def stop_requested(self) -> bool:
        return self.interrupt.requested()

    def after_fit(self) -> None:
        self.interrupt.__exit__(None, None, None)

    @property
    def signal_name(self) -> str:
        """The signal that arrived (``SIGTERM`` / ``SIGINT``), or ``""``."""
        return self.interrupt.signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number."""
        return self.interrupt.exit_code
