"""Every Hydra job's entry, written once (:class:`HydraJob`), and running it so that a user's
mistake ends in one clear line and exit code 2, not a traceback: the app's own refusals
(:class:`~hybrid.errors.HybridError`) and Hydra's (an unknown key, a bad override, a missing config
option) alike. A run refused before any work leaves no run dir behind."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from hybrid.errors import USAGE_ERROR, HybridError
from hybrid.jobs import schema as _job_schemas  # noqa: F401  (registers every job's keys and paths)
from hybrid.util.cli import describe_keys
from hybrid.util.hydra_job import multirun_job
from hybrid.util.typed_config import not_a_key

log = logging.getLogger("hybrid")

# Files older than this (less a second of file-system time resolution) were not written by this process.
_STARTED = time.time() - 1.0
_task_started = False


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
    A single run refused so leaves no run dir if it wrote nothing there but Hydra's own files.

    In a multirun sweep a failing job's error is raised on instead, after the same line, so Hydra
    records the job as failed (Optuna reports the trial as failed); an interruption still stops the
    whole sweep.
    """
    global _task_started
    _task_started = True
    code = USAGE_ERROR
    try:
        return task(cfg)
    except (HybridError, MissingMandatoryValue) as err:
        if isinstance(err, MissingMandatoryValue):
            log.error("%s must be set on the command line", err.full_key)
        else:
            log.error("%s", one_line(err))
            code = getattr(err, "exit_code", USAGE_ERROR)
        if code == USAGE_ERROR and multirun_job() is not None:
            raise
        if code == USAGE_ERROR:
            remove_unused_run_dir()
    raise SystemExit(code)


def written_by_this_process(folder: Path) -> bool:
    """Whether ``folder`` and everything in it are newer than this process (a folder that existed
    before keeps an older time even when files in it were overwritten)."""
    return all(path.stat().st_mtime >= _STARTED for path in [folder, *folder.rglob("*")])


def remove_unused_run_dir() -> None:
    """What a refused run leaves: its run dir when that holds nothing but what Hydra wrote for this
    job (``.hydra/`` and the job's log), so no empty run is left in ``outputs/``; in a run dir kept
    for what else it holds (a resumed run's checkpoints, a user's files), this job's new config
    folder (``.hydra/resumed_<time>/``). Nothing older than this process is removed."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    subdir = run_dir / hydra_cfg.output_subdir if hydra_cfg.output_subdir else None
    own = {f"{hydra_cfg.job.name}.log"} | ({subdir.relative_to(run_dir).parts[0]} if subdir else set())
    if not run_dir.is_dir():
        return
    if all(entry.name in own for entry in run_dir.iterdir()) and written_by_this_process(run_dir):
        close_log_files_in(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    elif subdir is not None and subdir.is_dir() and written_by_this_process(subdir):
        shutil.rmtree(subdir, ignore_errors=True)


def close_log_files_in(folder: Path) -> None:
    """Detach and close every logging file handler writing into ``folder`` (Hydra's job log)."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(folder.resolve()):
                logger.removeHandler(handler)
                handler.close()


def hydra_error_line(err: Exception) -> str:
    """One line for an error Hydra raised while composing the config; an override of a key that
    does not exist gets the closest real key, as ``+key=value`` does from the schema check."""
    cause = err.__cause__
    if isinstance(cause, ConfigKeyError | ConfigAttributeError) and cause.full_key and cause.parent_node is not None:
        return not_a_key(str(cause.full_key), [str(k) for k in cause.parent_node])
    return " ".join(str(err).split("Config search path:")[0].split())


def launch(main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function: an error Hydra meets before the job starts (composition,
    override syntax, an unknown group option) ends in one line and exit code 2, like the app's own
    refusals; everything after that is :func:`run_entry`'s. ``HYDRA_FULL_ERROR=1`` keeps Hydra's
    full report."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing them and exiting 1
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        if _task_started:
            raise
        sys.stderr.write(f"[hybrid][ERROR] - {hydra_error_line(err)}\n")
        raise SystemExit(USAGE_ERROR) from None
    except HybridError as err:  # a multirun job's refusal, already logged by run_entry
        raise SystemExit(getattr(err, "exit_code", USAGE_ERROR)) from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def run_hydra_app(app: Callable[[], object], prog: str, argv: list[str]) -> int:
    """Run the ``@hydra.main`` function ``app`` with the command-line overrides ``argv`` (Hydra
    reads them from ``sys.argv``) under the name ``prog``, through :func:`launch`: exit code 0
    unless it raises ``SystemExit``."""
    sys.argv = [prog, *argv]
    launch(app)
    return 0


@dataclass(frozen=True)
class HydraJob:
    """A Hydra job's ``main(argv, prog) -> exit code``: ``conf/<config_name>.yaml`` composed with
    the command line's ``key=value`` overrides, then ``task(cfg)`` through :func:`run_entry`. A job
    module says ``main = HydraJob("export", export)``; ``hybrid <job>``, ``python -m
    hybrid.jobs.<job>`` and the root scripts all call it.

    ``first_key``: a first word without ``=`` is this key (``hybrid report DIR``); ``keys``: the
    dataclass (with help texts) whose keys ``--help`` lists in place of Hydra's help (a job with
    ``keys`` has a ``first_key``);
    ``extra_overrides``: overrides the job adds to the command line's (train: a worker's run dir
    under torchrun, a resumed run's).
    """

    config_name: str
    task: Callable[[DictConfig], object]
    first_key: str | None = None
    keys: type | None = None
    extra_overrides: Callable[[list[str]], list[str]] | None = None

    @property
    def name(self) -> str:
        """The job's name in ``hybrid <name>``."""
        return self.config_name.replace("_", "-")

    def app(self) -> Callable[[], object]:
        """The ``@hydra.main`` function (returning the task's value, which a sweeper optimizes)."""
        task = self.task

        @hydra.main(version_base="1.3", config_path="../conf", config_name=self.config_name)
        def app(cfg: DictConfig):
            return run_entry(task, cfg)

        return app

    def __call__(self, argv: list[str] | None = None, prog: str | None = None) -> int:
        """Run the job with the command-line words ``argv`` under the name ``prog``; returns the
        exit code (a refusal's 2, a signal's 128 + its number) rather than raising it."""
        prog = prog or f"hybrid {self.name}"
        argv = list(sys.argv[1:] if argv is None else argv)
        if self.first_key is not None and argv and "=" not in argv[0] and not argv[0].startswith("-"):
            argv[0] = f"{self.first_key}={argv[0]}"
        if self.keys is not None and argv[:1] in (["--help"], ["-h"]):
            self.print_keys(prog)
            return 0
        if self.extra_overrides is not None:
            argv = self.extra_overrides(argv)
        try:
            return run_hydra_app(self.app(), prog, argv)
        except SystemExit as err:
            return int(err.code or 0)

    def print_keys(self, prog: str) -> None:
        """``--help`` of a job with ``keys``: each key with its default and help, in place of
        Hydra's help (``--hydra-help`` still shows that)."""
        print(f"usage: {prog} {self.first_key}=DIR [key=value ...]   ({prog} DIR works too)\n")
        print("keys:\n" + "\n".join(describe_keys(self.keys)))
        print(f"\nHydra's options (--cfg job, -m, hydra.run.dir=...): {prog} --hydra-help")


def started_as() -> list[str]:
    """How this job was started, to start it again: ``python train.py`` (``torchrun
    --nproc_per_node=N train.py`` for a DDP job), or ``hybrid train``."""
    program = sys.argv[0] if sys.argv and sys.argv[0] else "train.py"
    if not program.endswith(".py"):
        return program.split()
    nproc = os.environ.get("LOCAL_WORLD_SIZE")
    launcher = f"torchrun --nproc_per_node={nproc}" if nproc and int(os.environ.get("WORLD_SIZE", 1)) > 1 else "python"
    return [*launcher.split(), program]
