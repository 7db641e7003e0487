"""The packed cache (``data.cache_format=packed`` or ``packed_jpg``): few large files instead of one
per image, read by offset.

A cluster file system (NFS, Lustre, GPFS) serves a million small files worst of all, and every
epoch repeats that pattern; here the entries of a part of the cache are appended to pack files of
about ``prepare.pack_mb`` each, next to an index naming each entry's offset, length and a check:

    <cache>/packs/<format>-<settings>/<part>-<n>.bin      entries back to back: raw uint8
        [C, S, S] (packed, lossless like npy) or JPEG bytes (packed_jpg, the jpg cache's bytes)
    <cache>/packs/<format>-<settings>/<part>-<n>.idx.npy  one row per entry: name, offset,
        length, CRC-32 of its ends, source mtime

``<settings>`` is a digest of what the manifest must match (size, channels, resize, format), and
``<part>`` is ``<shard>of<num_shards>``.

A pack becomes part of the cache when its index is written, after its data is complete on disk, so
an interrupted ``hybrid prepare`` loses at most the pack it was filling. The loaders read an entry
with one ``pread`` and keep random access, and with it the seeded sampler, exact mid-epoch resume,
DDP evaluation of every sample once, ``data.on_bad_image``, ``data.sampling_ratio`` and folds.

A pack whose data does not match its index (cut short, or another file under its name) is named in
one log line and left out: its images are read from their sources. Unlike the per-file caches, an
entry is not compared with its source's time at every read (that would touch every source file
each epoch, which is what packing avoids): rerun ``hybrid prepare`` after changing images, which
caches the changed ones again.

Why our own format rather than a library's: LitData's and MosaicML Streaming's datasets are
iterable and shuffle and split the data over ranks and workers themselves, which replaces the seeded
sampler, the exact resume and the once-per-sample DDP evaluation; WebDataset's ``wids`` keeps random
access, but finds samples by their position in a tar file (which each worker scans on opening) where
we look them up by the CSV's file names. The format is this module: an append-only file and a numpy
index.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hybrid.data.cache import MATCH_KEYS, PACKED_FORMATS, CachedEntry, CachedRows, CacheFolder, encode_entry
from hybrid.data.decode import jpeg_tensor
from hybrid.data.files import FileTable, fixed_width
from hybrid.data.transforms import read_image

log = logging.getLogger(__name__)

PACKS = "packs"
DATA_SUFFIX, INDEX_SUFFIX = ".bin", ".idx.npy"
ENTRY_FIELDS = [("offset", "<u8"), ("length", "<u8"), ("ends_crc", "<u4"), ("source_mtime", "<f8")]
ENDS = 4096  # bytes at each end of an entry that its check covers


def ends_crc(data: bytes | bytearray) -> int:
    """CRC-32 of an entry's first and last :data:`ENDS` bytes: what tells an index that does not
    match its data (shifted offsets, another pack's index, another file under the pack's name) at
    every read for ~1 us, where a CRC of the whole entry would cost ~0.1 ms, as much as the read."""
    view = memoryview(data)
    return zlib.crc32(view[-ENDS:], zlib.crc32(view[:ENDS]))


FIELDS = tuple(field for field, _ in ENTRY_FIELDS)


def data_file(index_path: Path) -> Path:
    """The data file a pack index describes."""
    return index_path.with_name(index_path.name.removesuffix(INDEX_SUFFIX) + DATA_SUFFIX)


@dataclass
class PackEntries:
    """The usable entries of a packed cache, one array per field, sorted by name; ``pack`` numbers
    the data file (in ``files``) each is in."""

    names: np.ndarray
    files: list[str]
    pack: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    ends_crc: np.ndarray
    source_mtime: np.ndarray


def index_dtype(name_width: int) -> np.dtype:
    """A pack index's row: the entry's name (UTF-8, fixed width) and where its bytes are."""
    return np.dtype([("name", f"S{max(name_width, 1)}"), *ENTRY_FIELDS])


def pack_stem(part: str, number: int) -> str:
    """The file name (without suffix) of a part's ``number``-th pack."""
    return f"{part}-{number:05d}"


class PackedCache(CacheFolder):
    """The packed cache of one folder: writes (:meth:`writer`) and reads (:meth:`for_rows`) it."""

    def __init__(self, settings: dict):
        super().__init__(settings)
        # Packs made with other settings (another size, or the other packed format) are in folders of
        # their own, so they can never be read for these; a rebuild removes them.
        made_with = json.dumps({key: settings[key] for key in MATCH_KEYS}, sort_keys=True)
        self.packs = self.dir / PACKS / f"{self.format}-{hashlib.sha256(made_with.encode()).hexdigest()[:12]}"
        self.twin_format = PACKED_FORMATS[self.format]  # the per-file format holding the same bytes
        self._entries: PackEntries | None = None

    def has_fresh_file(self, name: str, source: str) -> bool:
        return False  # entries live in packs: prepare finds the fresh ones from the pack indexes

    def store(self, name: str, image: torch.Tensor) -> bytes:
        return self.encode(image)

    def encode(self, image: torch.Tensor) -> bytes:
        """An entry's bytes: raw uint8 pixels (packed) or the jpg cache's JPEG (packed_jpg)."""
        if self.twin_format == "npy":
            return image.contiguous().numpy().tobytes()
        return encode_entry(image, "jpg", self.settings["jpeg_quality"])

    def decode(self, data: bytearray) -> torch.Tensor:
        """An entry's bytes (a writable buffer, which the tensor shares) as a ``[C, H, W]`` uint8 tensor."""
        channels, side = self.settings["in_channels"], self.settings["img_size"]
        if self.twin_format == "npy":
            return torch.frombuffer(data, dtype=torch.uint8).view(channels, side, side)
        return read_image(io.BytesIO(data), channels)

    def pack_indexes(self, part: str | None = None) -> list[Path]:
        """The index files present (of one ``part`` when given), oldest first: of a name cached
        twice (its source changed, or by parts of another split into shards), the newer entry wins."""
        pattern = f"{part}-*{INDEX_SUFFIX}" if part else f"*{INDEX_SUFFIX}"
        found = self.packs.glob(pattern) if self.packs.is_dir() else []
        return sorted(found, key=lambda path: (path.stat().st_mtime_ns, path.name))

    def read_pack(self, index_path: Path) -> np.ndarray | None:
        """A pack's index when its data matches it (the data file is there, as long as the index
        says); else ``None``, with one log line naming the pack."""
        data_path = data_file(index_path)
        try:
            index = np.load(index_path, allow_pickle=False)
            if index.dtype.names != ("name", *FIELDS):
                raise ValueError("not a pack index")
            size = data_path.stat().st_size
        except (OSError, ValueError) as err:
            log.warning("ignoring the pack %s (its images are read from their sources): %s", index_path, err)
            return None
        end = int((index["offset"] + index["length"]).max()) if len(index) else 0
        if size != end:
            log.warning(
                "ignoring the pack %s (its images are read from their sources): %d bytes, its index %s wants %d",
                data_path, size, index_path.name, end,
            )  # fmt: skip
            return None
        return index

    def entries(self) -> PackEntries:
        """Every usable entry, sorted by name (of a name cached twice, the newer pack's)."""
        if self._entries is None:
            names, columns, files = [], {field: [] for field in ("pack", *FIELDS)}, []
            for index_path in self.pack_indexes():
                index = self.read_pack(index_path)
                if index is None:
                    continue
                names.append(index["name"])
                columns["pack"].append(np.full(len(index), len(files), np.int32))
                for field in FIELDS:
                    columns[field].append(index[field])
                files.append(str(data_file(index_path)))
            width = max((n.dtype.itemsize for n in names), default=1)
            every = np.concatenate([n.astype(f"S{width}") for n in names]) if names else np.zeros(0, "S1")
            # np.unique gives each name's first occurrence, in name order: of the reversed rows, the last
            _, first_reversed = np.unique(every[::-1], return_index=True)
            last = len(every) - 1 - first_reversed
            picked = {field: np.concatenate(parts)[last] if parts else np.zeros(0) for field, parts in columns.items()}
            self._entries = PackEntries(every[last], files, **picked)
        return self._entries

    def for_rows(self, files: FileTable) -> PackedRows:
        entries = self.entries()
        wanted = fixed_width(files.names)
        slot = np.full(len(wanted), -1, np.int64)
        if len(entries.names) and len(wanted):
            at = np.minimum(np.searchsorted(entries.names, wanted), len(entries.names) - 1)
            hit = entries.names[at] == wanted
            slot[hit] = at[hit]
        return PackedRows(self, entries, slot)

    def writer(self, part: str, pack_bytes: int) -> PackWriter:
        """A writer of new packs for ``part`` (numbered after those already there)."""
        numbers = [int(p.name.removesuffix(INDEX_SUFFIX).rsplit("-", 1)[1]) for p in self.pack_indexes(part)]
        return PackWriter(self, part, pack_bytes, max(numbers, default=-1) + 1)

    def remove_other_settings(self) -> None:
        """Delete the packs made with other settings (a rebuild: the manifest was for those)."""
        for folder in self.packs.parent.iterdir() if self.packs.parent.is_dir() else []:
            if folder != self.packs and folder.is_dir():
                shutil.rmtree(folder)

    def cached_sources(self, part: str) -> dict[str, float]:
        """The names a part's usable packs hold, with the source mtime each was made from."""
        done: dict[str, float] = {}
        for index_path in self.pack_indexes(part):
            index = self.read_pack(index_path)
            if index is not None:
                done.update(
                    zip((n.decode("utf-8") for n in index["name"]), index["source_mtime"].tolist(), strict=True)
                )
        return done


class PackedRows(CachedRows):
    """A dataset's rows in the packed cache: per row, the entry's slot (-1: not cached), in one array.
    Files are opened lazily in each process (loader workers are forked), and a pack found not to
    match its index while reading is left out from then on, in that process."""

    def __init__(self, cache: PackedCache, entries: PackEntries, slot: np.ndarray):
        self.cache = cache
        self.entries = entries
        self.slot = slot
        self._handles: dict[int, int] = {}
        self._pid = os.getpid()
        self._bad: set[int] = set()

    def __getstate__(self) -> dict:  # spawned workers open their own files
        return {**self.__dict__, "_handles": {}}

    def _handle(self, pack: int) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own (pread needs no shared offset, but be clean)
            self._handles, self._pid = {}, os.getpid()
        if pack not in self._handles:
            self._handles[pack] = os.open(self.entries.files[pack], os.O_RDONLY)
        return self._handles[pack]

    def lookup(self, i: int) -> CachedEntry | None:
        slot = int(self.slot[i])
        if slot < 0:
            return None
        entries = self.entries
        pack, length = int(entries.pack[slot]), int(entries.length[slot])
        if pack in self._bad:
            return None
        data = bytearray(length)  # read straight into a writable buffer the tensor then wraps: one copy
        try:
            read = os.preadv(self._handle(pack), [data], int(entries.offset[slot]))
        except OSError as err:
            return self._left_out(pack, f"unreadable ({err})")
        if read != length or ends_crc(data) != int(entries.ends_crc[slot]):
            return self._left_out(pack, f"entry {entries.names[slot].decode()} does not match its index")
        return PackedEntry(self.cache, data)

    def _left_out(self, pack: int, reason: str) -> None:
        self._bad.add(pack)
        log.warning("ignoring the pack %s from now on (its images are read from their sources): %s",
                    self.entries.files[pack], reason)  # fmt: skip


class PackedEntry(CachedEntry):
    """An entry's bytes, read."""

    def __init__(self, cache: PackedCache, data: bytearray):
        self.cache = cache
        self.data = data

    def image(self) -> torch.Tensor:
        return self.cache.decode(self.data)

    def jpeg(self) -> torch.Tensor | None:
        return jpeg_tensor(self.data)


class PackWriter:
    """Appends entries to a part's packs, starting a new pack past ``pack_bytes``. A pack's data is
    written to a hidden temporary file, flushed to disk and renamed, then its index is written: an
    interrupted run leaves complete packs only."""

    def __init__(self, cache: PackedCache, part: str, pack_bytes: int, first_number: int):
        self.cache = cache
        self.part = part
        self.pack_bytes = pack_bytes
        self.number = first_number
        self.handle = None
        self.rows: list[tuple[str, int, int, int, float]] = []
        self.size = 0

    def add(self, name: str, data: bytes, source_mtime: float) -> None:
        """Append one entry."""
        if self.handle is None:
            self.cache.packs.mkdir(parents=True, exist_ok=True)
            self.handle = open(self._temporary(), "wb")  # noqa: SIM115 (closed by finish_pack)
        self.handle.write(data)
        self.rows.append((name, self.size, len(data), ends_crc(data), source_mtime))
        self.size += len(data)
        if self.size >= self.pack_bytes:
            self.finish_pack()

    def _temporary(self) -> Path:
        return self.cache.packs / f".{pack_stem(self.part, self.number)}{DATA_SUFFIX}.tmp"

    def finish_pack(self) -> None:
        """Make the open pack part of the cache (nothing to do when none is open)."""
        if self.handle is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        self.handle = None
        stem = pack_stem(self.part, self.number)
        os.replace(self._temporary(), self.cache.packs / f"{stem}{DATA_SUFFIX}")
        names = fixed_width(row[0] for row in self.rows)
        index = np.empty(len(self.rows), index_dtype(names.dtype.itemsize))
        index["name"] = names
        for column, field in enumerate(FIELDS, start=1):
            index[field] = [row[column] for row in self.rows]
        temporary = self.cache.packs / f".{stem}{INDEX_SUFFIX}.tmp"
        with open(temporary, "wb") as handle:
            np.save(handle, index, allow_pickle=False)
        os.replace(temporary, self.cache.packs / f"{stem}{INDEX_SUFFIX}")
        self.rows, self.size = [], 0
        self.number += 1

    def abandon(self) -> None:
        """Drop the pack being filled (an interrupted run): its entries are cached again next time."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
            self._temporary().unlink(missing_ok=True)
        self.rows, self.size = [], 0
