"""Files replaced atomically: written under a temporary name beside the target, then renamed, so a
crash or a kill never leaves half a file under the real name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, durable: bool = False) -> Path:
    """Call ``write(tmp)`` to fill a temporary sibling of ``path``, then move it into place;
    ``durable``: fsync the file before the move and the folder after it, so a power cut leaves the
    old file or the new one, never an empty one.

    The temporary name keeps the suffix (some writers pick the format from it, e.g. ``savefig``)
    and carries the process id, so two processes never write the same temporary file. On an error
    the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def fsync_path(path: Path) -> None:
    """fsync a file or folder by its path."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` by ``data`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = False) -> Path:
    """Replace ``path`` by ``text`` atomically (``durable``: as :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text), durable=durable)
