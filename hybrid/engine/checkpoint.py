"""Checkpoints: written atomically, read without executing anything (``weights_only``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hybrid.errors import CheckpointError

FORMAT = "hybrid-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a hybrid checkpoint onto the CPU, or raise :class:`CheckpointError` saying why not."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(f"ckpt_path={path}: not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"ckpt_path={path}: not a hybrid checkpoint (no '{FORMAT}' marker)")
    return payload


def load_model_weights(model: torch.nn.Module, payload: dict, path: str | os.PathLike) -> None:
    """Load a checkpoint's weights, with a clear message when they do not fit ``model``."""
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise CheckpointError(f"ckpt_path={path}: weights do not fit the configured model ({first})") from err
