"""What a run records about itself: command line, code version, machine, and its W&B identity."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from hybrid.util.hydra_job import multirun_job

CODE_ROOT = Path(__file__).resolve().parents[2]  # the checkout hybrid runs from


def git_state(repo: Path) -> dict:
    """The commit checked out in ``repo`` and whether the work tree has local changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        commit, dirty = "", None
    return {"git_commit": commit or None, "git_dirty": dirty}


def command_line() -> str:
    """The command that started this process, as it would be typed again."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def run_metadata(overrides: list[str]) -> dict:
    """Command line, Hydra overrides and the code's git state, stored with a tracked run's config."""
    return {"command": command_line(), "overrides": list(overrides), **git_state(CODE_ROOT)}


def system_info(device: torch.device) -> dict:
    """Device, library versions and core count, for comparing speed across machines."""
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }


def run_identity(logger_cfg: DictConfig, task_name: str, run_dir: Path, tags: list[str]) -> dict:
    """``group``, ``name`` and ``tags`` for the tracker.

    Unset ``group``: every job of one multirun sweep shares the group ``<task>-<sweep dir name>``,
    so W&B shows the sweep together; a single run has no group. Unset ``name``: a sweep job is
    named by its overrides (``model.emb_dim=48``), a single run by its run dir.
    """
    job = multirun_job()
    group = logger_cfg.group or (f"{task_name}-{job.sweep_dir.name}" if job else None)
    job_name = (job.swept or f"job {job.number}") if job else run_dir.name
    name = logger_cfg.name or job_name
    all_tags = [*(logger_cfg.tags or []), *tags]
    if job:
        all_tags.append("sweep")
    return {"group": group, "name": name, "tags": list(dict.fromkeys(str(t) for t in all_tags))}
