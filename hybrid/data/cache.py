"""The prepared image cache: every image of a dataset decoded once and resized to the model's input
size, stored next to the source (``<root>/.cache/<img_size>/``) or in ``data.cache_dir``.

Built by ``hybrid prepare``; the data module uses it automatically when its manifest
matches the data config. Entries are keyed by file name (the CSVs' ``Filename``), so labels, splits
and counts come from the CSVs exactly as without a cache; an image without a (fresh) cache entry is
decoded from its source as usual.

Formats (``data.cache_format``): ``npy``, ``jpg`` and ``png`` hold one file per image (here);
``packed`` and ``packed_jpg`` hold the same bytes as ``npy`` and ``jpg`` in a few large files
(:mod:`hybrid.data.packed`). Both kinds answer the same contract: a :class:`CacheFolder` gives a
dataset's :class:`CachedRows`, whose ``lookup(i)`` gives row ``i``'s :class:`CachedEntry`.
"""

from __future__ import annotations

import io
import json
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from hybrid.data.decode import read_jpeg_bytes
from hybrid.data.files import FileTable
from hybrid.data.transforms import ResizeUint8, read_image
from hybrid.errors import ConfigError
from hybrid.util.atomic import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # the data layer's typed settings (annotations only)
    from hybrid.data.schema import DataSchema

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MANIFEST = "manifest.json"
FILE_FORMATS = ("npy", "jpg", "png")  # one file per image
PACKED_FORMATS = {"packed": "npy", "packed_jpg": "jpg"}  # few large files (hybrid.data.packed): the per-file twin
FORMATS = (*FILE_FORMATS, *PACKED_FORMATS)
# Manifest keys that must match the data config for the cache to be used.
MATCH_KEYS = ("version", "img_size", "in_channels", "resize", "format")


def default_cache_dir(root: Path, img_size: int) -> Path:
    """``<root>/.cache/<img_size>``: hidden, so the image index never picks up cached files."""
    return root / ".cache" / str(int(img_size))


def check_cache_format(fmt: str) -> str:
    """``data.cache_format``: one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ConfigError(f"data.cache_format={fmt!r}; choose one of {list(FORMATS)}")
    return fmt


def cache_settings(cfg: DataSchema, root: Path) -> dict:
    """The cache a ``data`` config asks for: its folder and the manifest fields it must match."""
    fmt = check_cache_format(str(cfg.cache_format))
    folder = cfg.cache_dir or default_cache_dir(root, int(cfg.img_size))
    return {
        "dir": Path(str(folder)).expanduser().resolve(),
        "version": CACHE_VERSION,
        "img_size": int(cfg.img_size),
        "in_channels": int(cfg.in_channels),
        "resize": ResizeUint8.method,
        "format": fmt,
        "jpeg_quality": int(cfg.cache_jpeg_quality),
    }


class CacheFolder(ABC):
    """A cache folder and its manifest: what it was made with, and whether a config can use it."""

    def __init__(self, settings: dict):
        self.dir = Path(settings["dir"])
        self.settings = settings
        self.format = settings["format"]

    def read_manifest(self) -> dict | None:
        """The manifest, or ``None`` when there is none (or it is unreadable)."""
        try:
            return json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    def write_manifest(self, extra: dict) -> None:
        """Record what the cache holds and how it was made (atomically)."""
        record = {k: self.settings[k] for k in MATCH_KEYS} | extra
        if "jpg" in self.format:
            record["jpeg_quality"] = self.settings["jpeg_quality"]
        atomic_write_text(self.dir / MANIFEST, json.dumps(record, indent=2))

    def mismatch(self, manifest: dict) -> str | None:
        """Why a manifest does not fit this config (``None`` when it does)."""
        for key in MATCH_KEYS:
            if manifest.get(key) != self.settings[key]:
                return f"{key} is {manifest.get(key)!r}, the config wants {self.settings[key]!r}"
        return None

    @abstractmethod
    def for_rows(self, files: FileTable) -> CachedRows:
        """Lookup of the cache entries of a dataset's rows."""

    @abstractmethod
    def has_fresh_file(self, name: str, source: str) -> bool:
        """Whether image ``name`` has an entry file of its own, not older than ``source`` (what a
        rerun of ``hybrid prepare`` skips; a packed cache decides that per pack, before the work)."""

    @abstractmethod
    def store(self, name: str, image: torch.Tensor) -> bytes | None:
        """Cache ``image`` (uint8 ``[C, H, W]``): write its file, or return the bytes to append to a
        pack (which the process writing the pack does)."""


class CachedRows(ABC):
    """The cache entries of a dataset's rows: :meth:`lookup` gives row ``i``'s, or ``None``."""

    @abstractmethod
    def lookup(self, i: int) -> CachedEntry | None:
        """Row ``i``'s entry, or ``None`` when it has none (the source is read instead)."""


class CachedEntry(ABC):
    """One image's cache entry: its pixels, and (``jpg``-type caches) its JPEG bytes."""

    @abstractmethod
    def image(self) -> torch.Tensor:
        """The entry as a ``[C, H, W]`` uint8 tensor."""

    @abstractmethod
    def jpeg(self) -> torch.Tensor | None:
        """The entry's bytes as a uint8 tensor when it is a JPEG (for ``data.decode=cuda``), else ``None``."""


class ImageCache(CacheFolder):
    """A cache of one file per image (``npy``, ``jpg``, ``png``; see the module docstring)."""

    def path(self, name: str) -> Path:
        """Where the entry of image ``name`` lives (the name plus the format's suffix)."""
        return self.dir / f"{name}.{self.format}"

    def fresh(self, name: str, source: str) -> Path | None:
        """The entry of ``name`` if it exists and is not older than ``source``, else ``None``."""
        path = self.path(name)
        try:
            return path if path.stat().st_mtime >= os.stat(source).st_mtime else None
        except OSError:
            return None

    def read(self, path: Path) -> torch.Tensor:
        """A cached entry as a ``[C, H, W]`` uint8 tensor."""
        if self.format == "npy":
            return torch.from_numpy(np.load(path))
        return read_image(str(path), self.settings["in_channels"])

    def write(self, name: str, image: torch.Tensor) -> None:
        """Store ``image`` (uint8 ``[C, H, W]``) atomically: a temporary file renamed into place, so
        an interrupted run never leaves a truncated entry behind."""
        atomic_write_bytes(self.path(name), self.encode(image))

    def encode(self, image: torch.Tensor) -> bytes:
        """The file bytes of an entry in this cache's format."""
        return encode_entry(image, self.format, self.settings["jpeg_quality"])

    def for_rows(self, files: FileTable) -> CachedRows:
        return FileEntries(self, files)

    def has_fresh_file(self, name: str, source: str) -> bool:
        return self.fresh(name, source) is not None

    def store(self, name: str, image: torch.Tensor) -> None:
        self.write(name, image)


class FileEntries(CachedRows):
    """Row ``i``'s entry is the file named after it, when it is not older than the row's source."""

    def __init__(self, cache: ImageCache, files: FileTable):
        self.cache = cache
        self.files = files

    def lookup(self, i: int) -> CachedEntry | None:
        path = self.cache.fresh(self.files.names[i], self.files.paths[i])
        return None if path is None else CachedFile(self.cache, path)


class CachedFile(CachedEntry):
    """An entry of a one-file-per-image cache."""

    def __init__(self, cache: ImageCache, path: Path):
        self.cache = cache
        self.path = path

    def image(self) -> torch.Tensor:
        return self.cache.read(self.path)

    def jpeg(self) -> torch.Tensor | None:
        return read_jpeg_bytes(str(self.path))


def encode_entry(image: torch.Tensor, fmt: str, jpeg_quality: int) -> bytes:
    """A uint8 ``[C, H, W]`` image as the bytes of an entry of format ``fmt`` (one of :data:`FILE_FORMATS`)."""
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, image.contiguous().numpy())
        return buffer.getvalue()
    pixels = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if fmt == "png":
        pil.save(buffer, "PNG", compress_level=1)  # decode speed barely depends on the level
    else:
        pil.save(buffer, "JPEG", quality=jpeg_quality)
    return buffer.getvalue()


def cache_folder(settings: dict) -> CacheFolder:
    """The reader / writer of a cache's format (``packed*``: :class:`hybrid.data.packed.PackedCache`)."""
    if settings["format"] in PACKED_FORMATS:
        from hybrid.data.packed import PackedCache  # the packed cache builds on this module

        return PackedCache(settings)
    return ImageCache(settings)


def open_cache(cfg: DataSchema, root: Path) -> CacheFolder | None:
    """The prepared cache for a ``data`` config when one exists and matches it, else ``None``
    (a stale or foreign cache is ignored with a log line)."""
    if not cfg.use_cache:
        return None
    cache = cache_folder(cache_settings(cfg, root))
    manifest = cache.read_manifest()
    if manifest is None:
        return None
    reason = cache.mismatch(manifest)
    if reason:
        log.warning("ignoring the image cache in %s: %s (rebuild: hybrid prepare)", cache.dir, reason)
        return None
    log.info("using the image cache in %s (%s images, %s)", cache.dir, manifest.get("count"), cache.format)
    return cache
