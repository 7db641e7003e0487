"""Running a Hydra app so that a user's mistake ends in one clear line, not a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from hybrid.errors import HybridError
from hybrid.util.hydra_job import multirun_job

log = logging.getLogger("hybrid")


def one_line(err: Exception) -> str:
    """The message of ``err`` on one line. An error raised in a DataLoader worker comes back wrapped
    with the worker's traceback; its last line carries the original message."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def run_entry(task: Callable[[DictConfig], object], cfg: DictConfig):
    """Run ``task``; a :class:`HybridError` or an unset required key (``???``) stops it with a
    one-line message and exit code 2 (or the error's own ``exit_code``, e.g. 143 after SIGTERM).

    In a multirun sweep a failing job's error is raised on instead, after the same line, so Hydra
    records the job as failed and the sweep goes on with the next one (Optuna reports the trial as
    failed); an interruption still stops the whole sweep.
    """
    code = 2
    try:
        return task(cfg)
    except (HybridError, MissingMandatoryValue) as err:
        if isinstance(err, MissingMandatoryValue):
            log.error("%s must be set on the command line", err.full_key)
        else:
            log.error("%s", one_line(err))
            code = getattr(err, "exit_code", 2)
        if code == 2 and multirun_job() is not None:
            raise
    raise SystemExit(code)
