"""Build the prepared image cache (see :mod:`hybrid.data.cache`).

``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]`` (the job: :mod:`hybrid.jobs.prepare`)

Every image under ``data.root`` is decoded once, resized to ``model.img_size`` exactly as the
loader would, and written atomically under its file name; rerunning skips fresh entries, so an
interrupted run resumes. The label CSVs are not touched.

- **Every core**: ``prepare.num_workers`` processes (``auto``: one per core this process may use)
  decode and resize, each with one torch thread; the main process counts, logs and writes the
  manifest. An entry's bytes do not depend on the process that made it.
- **Every node**: ``prepare.shard=I prepare.num_shards=N`` caches the I-th of N disjoint parts of
  the sorted image names (every N-th name, so each part mixes the folders), e.g. one part per task
  of a SLURM array. Each part records what it did in ``parts/``; the part finishing last (or a
  ``prepare.finalize=true`` run) writes the manifest over all of them, which is what makes the
  cache usable.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hybrid.data.cache import MANIFEST, MATCH_KEYS, CacheFolder, cache_folder, cache_settings
from hybrid.data.dataset import index_images
from hybrid.data.loaders import available_cpus, dataset_root
from hybrid.data.packed import PackedCache
from hybrid.data.transforms import ResizeUint8, read_image
from hybrid.errors import ConfigError, JobInterrupted
from hybrid.util.atomic import atomic_write_text
from hybrid.util.progress import Progress

if TYPE_CHECKING:  # the schema module checks the data config with this one's rules
    from hybrid.data.schema import DataSchema

log = logging.getLogger(__name__)

PARTS = "parts"  # the cache folder's record of each shard's part (prepare.num_shards > 1)
CHUNK = 16  # images a worker process takes at a time: few messages, an even spread at the end
RAW_FORMATS = {"npy": "jpg", "packed": "packed_jpg"}  # uncompressed formats, and their ~10x smaller twin


@dataclass
class PrepareOptions:
    """``prepare``: how the cache is filled (processes on this node, and this node's part)."""

    num_workers: Any = "auto"  # processes decoding and resizing: auto (one per core) or a count
    shard: int = 0  # this run caches part `shard` of `num_shards` (0-based; e.g. a SLURM array index)
    num_shards: int = 1  # disjoint parts of the image names; the one finishing last writes the manifest
    finalize: bool = False  # cache nothing: write the manifest over the parts already done
    pack_mb: float = 1024  # data.cache_format=packed*: the size of each pack file (MB)


def resolve_prepare_workers(value) -> int:
    """``prepare.num_workers``: ``auto`` is every core this process may run on; else a count >= 1."""
    if value == "auto":
        return available_cpus()
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ConfigError(f"prepare.num_workers={value!r}: auto or a count of at least 1")
    return count


def check_prepare_options(options: PrepareOptions) -> None:
    """The part exists and the process count is usable, before any work."""
    resolve_prepare_workers(options.num_workers)
    if options.num_shards < 1:
        raise ConfigError(f"prepare.num_shards={options.num_shards}: at least 1")
    if not options.pack_mb > 0:
        raise ConfigError(f"prepare.pack_mb={options.pack_mb}: a size above 0 (MB)")
    if not 0 <= options.shard < options.num_shards:
        raise ConfigError(f"prepare.shard={options.shard}: 0 to {options.num_shards - 1} (prepare.num_shards)")


def estimated_bytes(settings: dict, count: int) -> int:
    """Upper estimate of the cache size: raw uint8 pixels (npy; png and jpg are smaller)."""
    side = settings["img_size"]
    return count * side * side * settings["in_channels"]


def check_disk_space(cache: CacheFolder, count: int) -> None:
    """Refuse a raw cache (npy, packed) that cannot fit (e.g. all of Sewer-ML at 480 px is ~900 GB)."""
    if cache.format not in RAW_FORMATS:
        return
    need = estimated_bytes(cache.settings, count)
    folder = next(p for p in (cache.dir, *cache.dir.parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ConfigError(
            f"data.cache_format={cache.format} needs ~{need / 1e9:.0f} GB in {cache.dir} but {free / 1e9:.0f} GB "
            f"are free; use data.cache_format={RAW_FORMATS[cache.format]} (~10x smaller) or another data.cache_dir"
        )
    log.info("the %s cache will take ~%.1f GB", cache.format, need / 1e9)


class EntryWriter:
    """Caches one image at a time: skips a fresh entry (unless the cache is being rebuilt), decodes,
    resizes and writes the rest; returns what happened (``written``, ``kept`` or the reason the
    source is unreadable) and, for a packed cache, the entry's bytes and its source's mtime, which
    the main process appends to the pack. One per process (the pool's initializer makes each worker's)."""

    def __init__(self, settings: dict, *, rebuild: bool):
        self.cache = cache_folder(settings)
        self.resize = ResizeUint8(settings["img_size"])
        self.rebuild = rebuild

    def __call__(self, name: str, path: str) -> tuple[str, bytes | None, float]:
        if not self.rebuild and self.cache.has_fresh_file(name, path):
            return "kept", None, 0.0
        settings = self.cache.settings
        try:
            mtime = os.stat(path).st_mtime
            image = self.resize(read_image(path, settings["in_channels"], settings["img_size"]))
        except (OSError, ValueError, RuntimeError) as err:
            # Left uncached: the loader meets it again and applies data.on_bad_image.
            return f"unreadable: {err}", None, 0.0
        return "written", self.cache.store(name, image), mtime


_writer: EntryWriter | None = None  # a worker process's own


def _start_worker(settings: dict, rebuild: bool) -> None:
    global _writer
    torch.set_num_threads(1)  # one core per process: the pool is the parallelism
    _writer = EntryWriter(settings, rebuild=rebuild)


def _cache_chunk(items: list[tuple[str, str]]) -> list[tuple]:
    return [(name, path, *_writer(name, path)) for name, path in items]


def _chunks(items: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def cache_entries(items: list[tuple[str, str]], settings: dict, *, rebuild: bool, workers: int) -> Iterator:
    """``(name, path, outcome, packed bytes, source mtime)`` for every ``(name, path)`` of ``items``,
    in their order, from ``workers`` processes (this one for 1)."""
    if workers == 1 or len(items) <= CHUNK:
        writer = EntryWriter(settings, rebuild=rebuild)
        yield from ((name, path, *writer(name, path)) for name, path in items)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with context.Pool(workers, initializer=_start_worker, initargs=(settings, rebuild)) as pool:
        for done in pool.imap(_cache_chunk, _chunks(items)):  # in order: a pack's layout is the same every run
            yield from done


def part_path(cache: CacheFolder, shard: int, num_shards: int) -> Path:
    """Where part ``shard`` of ``num_shards`` records what it did."""
    return cache.dir / PARTS / f"{shard}-of-{num_shards}.json"


def part_record(cache: CacheFolder, shard: int, num_shards: int) -> dict | None:
    """What part ``shard`` of ``num_shards`` recorded, if it is done for this cache's settings."""
    try:
        record = json.loads(part_path(cache, shard, num_shards).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("settings") == part_settings(cache) else None


def finished_parts(cache: CacheFolder, num_shards: int, source_images: int | None = None) -> list[dict] | None:
    """Every part's record when all ``num_shards`` parts are done for this cache's settings (and,
    given, this count of source images: a part recorded before the dataset changed does not count),
    else ``None``."""
    records = [part_record(cache, shard, num_shards) for shard in range(num_shards)]
    if any(r is None or source_images not in (None, r["source_images"]) for r in records):
        return None
    return records


def part_settings(cache: CacheFolder) -> dict:
    """What a part was made with: the manifest fields the config must match."""
    return {key: cache.settings[key] for key in MATCH_KEYS}


def write_manifest(cache: CacheFolder, root: Path, parts: list[dict]) -> dict:
    """The manifest over ``parts`` (each part's counts; one part when there are no shards), which
    makes the cache usable."""
    totals = {key: sum(part[key] for part in parts) for key in ("source_bytes", "count", "unreadable")}
    record = {"source_root": str(root), "source_images": parts[0]["source_images"], **totals}
    cache.write_manifest(record)
    return record


def finalize(cache: CacheFolder, root: Path, num_shards: int) -> dict:
    """``prepare.finalize=true``: the manifest over every part, or one line naming those missing."""
    parts = finished_parts(cache, num_shards)
    if parts is None:
        missing = [shard for shard in range(num_shards) if part_record(cache, shard, num_shards) is None]
        raise ConfigError(f"prepare.finalize: parts {missing} of {num_shards} are not done in {cache.dir / PARTS}")
    record = write_manifest(cache, root, parts)
    log.info("cache %s: manifest over %d parts, %d images", cache.dir, num_shards, record["count"])
    return {"written": 0, "kept": record["count"], "unreadable": record["unreadable"]}


def fresh_in_packs(cache: PackedCache, part: str, items: list[tuple[str, str]]) -> set[str]:
    """The names of ``items`` that a part's packs already hold, made from their source as it is now."""
    done = cache.cached_sources(part)
    fresh = set()
    for name, path in items:
        try:
            if done.get(name) == os.stat(path).st_mtime:
                fresh.add(name)
        except OSError:
            continue
    return fresh


def fill(
    cache: CacheFolder, items: list[tuple[str, str]], *, rebuild: bool, workers: int, options: PrepareOptions,
    progress: bool,
) -> dict:  # fmt: skip
    """Cache ``items`` (a packed cache: into new packs of this part); returns the counts."""
    counts = {"written": 0, "kept": 0, "unreadable": 0}
    packs = None
    if isinstance(cache, PackedCache):
        part = f"{options.shard}of{options.num_shards}"
        if rebuild:
            cache.remove_other_settings()
        kept = fresh_in_packs(cache, part, items)  # packs of these very settings stay valid
        counts["kept"] = len(kept)
        items = [(name, path) for name, path in items if name not in kept]
        packs = cache.writer(part, round(options.pack_mb * 1e6))
    bar = Progress(len(items) + counts["kept"], "prepare", enabled=progress, unit="img")
    bar.update(counts["kept"])
    try:
        for name, path, outcome, data, mtime in cache_entries(items, cache.settings, rebuild=rebuild, workers=workers):
            if outcome.startswith("unreadable"):
                log.warning("cannot read %s (%s); not cached", path, outcome.split(": ", 1)[-1])
                outcome = "unreadable"
            elif data is not None:
                packs.add(name, data, mtime)
            counts[outcome] += 1
            bar.update()
        if packs is not None:
            packs.finish_pack()
    except KeyboardInterrupt:
        if packs is not None:
            packs.abandon()
        raise JobInterrupted(
            f"prepare interrupted: {counts['written']} entries written, {counts['kept']} already there; every "
            "finished entry (packed: every finished pack) is kept, so the same command continues where this one "
            "stopped",
            130,
        ) from None
    finally:
        bar.close()
    return counts


def prepare_cache(data: DataSchema, options: PrepareOptions, *, progress: bool = True) -> dict:
    """Fill the cache ``data`` points at, or this node's part of it; returns what was done (counts)."""
    check_prepare_options(options)
    root = dataset_root(data, progress=progress)
    settings = cache_settings(data, root)
    cache = cache_folder(settings)
    if options.finalize:
        return finalize(cache, root, options.num_shards)
    index = index_images(str(root))
    items = list(index.items())[options.shard :: options.num_shards]  # sorted by name
    old = cache.read_manifest()
    stale = old is not None and cache.mismatch(old)
    if stale:
        log.warning("rebuilding the cache in %s: %s", cache.dir, stale)
    check_disk_space(cache, len(items))
    workers = resolve_prepare_workers(options.num_workers)
    part = f" (part {options.shard} of {options.num_shards})" if options.num_shards > 1 else ""
    log.info("caching %d images from %s into %s (%s)%s, %d processes", len(items), root, cache.dir, cache.format,
             part, workers)  # fmt: skip
    counts = fill(cache, items, rebuild=bool(stale), workers=workers, options=options, progress=progress)
    record = {
        "source_images": len(index),
        "source_bytes": sum(os.path.getsize(path) for _, path in items),
        "count": counts["written"] + counts["kept"],
        "unreadable": counts["unreadable"],
    }
    if options.num_shards == 1:
        write_manifest(cache, root, [record])
    else:
        atomic_write_text(
            part_path(cache, options.shard, options.num_shards),
            json.dumps({**record, "settings": part_settings(cache)}, indent=2),
        )
        parts = finished_parts(cache, options.num_shards, len(index))
        if parts is not None:  # the last part to finish makes the cache usable
            write_manifest(cache, root, parts)
            log.info("every part of %d is done: %s written", options.num_shards, cache.dir / MANIFEST)
        else:
            log.info("part %d of %d done; the last part writes the manifest", options.shard, options.num_shards)
    log.info(
        "cache %s: %d written, %d already there, %d unreadable", cache.dir, counts["written"], counts["kept"],
        counts["unreadable"],
    )  # fmt: skip
    return counts
