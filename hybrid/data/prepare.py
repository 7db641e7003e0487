"""Build the prepared image cache (see :mod:`hybrid.data.cache`).

``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]`` (the job: :mod:`hybrid.prepare`)

Every image under ``data.root`` is decoded once, resized to ``model.img_size`` exactly as the
loader would, and written atomically under its file name; rerunning skips fresh entries, so an
interrupted run resumes. The label CSVs are not touched.
"""

from __future__ import annotations

import logging
import os
import shutil

from omegaconf import DictConfig

from hybrid.data.cache import ImageCache, cache_settings
from hybrid.data.config import check_data_config
from hybrid.data.dataset import index_images
from hybrid.data.loaders import dataset_root
from hybrid.data.transforms import ResizeUint8, read_image
from hybrid.errors import ConfigError
from hybrid.util.progress import progress

log = logging.getLogger(__name__)


def estimated_bytes(settings: dict, count: int) -> int:
    """Upper estimate of the cache size: raw uint8 pixels (npy; png and jpg are smaller)."""
    side = settings["img_size"]
    return count * side * side * settings["in_channels"]


def check_disk_space(cache: ImageCache, count: int) -> None:
    """Refuse an npy cache that cannot fit (e.g. all of Sewer-ML at 480 px is ~900 GB raw)."""
    if cache.format != "npy":
        return
    need = estimated_bytes(cache.settings, count)
    folder = next(p for p in (cache.dir, *cache.dir.parents) if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ConfigError(
            f"data.cache_format=npy needs ~{need / 1e9:.0f} GB in {cache.dir} but {free / 1e9:.0f} GB are free; "
            "use data.cache_format=jpg (~10x smaller) or another data.cache_dir"
        )
    log.info("the npy cache will take ~%.1f GB", need / 1e9)


def prepare(cfg: DictConfig) -> dict:
    """Fill the cache the ``data`` config points at; returns what was done (counts)."""
    data = check_data_config(cfg.data)
    root = dataset_root(data, progress=bool(cfg.progress_bar))
    settings = cache_settings(data, root)
    cache = ImageCache(settings)
    index = index_images(str(root))
    resize = ResizeUint8(settings["img_size"])
    counts = {"written": 0, "kept": 0, "unreadable": 0}
    old = cache.read_manifest()
    stale = old is not None and cache.mismatch(old)
    if stale:
        log.warning("rebuilding the cache in %s: %s", cache.dir, stale)
    check_disk_space(cache, len(index))
    log.info("caching %d images from %s into %s (%s)", len(index), root, cache.dir, cache.format)
    for name, path in progress(sorted(index.items()), "prepare", enabled=bool(cfg.progress_bar), unit="img"):
        if not stale and cache.fresh(name, path) is not None:
            counts["kept"] += 1
            continue
        try:
            image = read_image(path, settings["in_channels"], settings["img_size"])
        except (OSError, ValueError, RuntimeError) as err:
            # Left uncached: the loader meets it again and applies data.on_bad_image.
            log.warning("cannot read %s (%s); not cached", path, err)
            counts["unreadable"] += 1
            continue
        cache.write(name, resize(image))
        counts["written"] += 1
    source_bytes = sum(os.path.getsize(p) for p in index.values())
    cache.write_manifest(
        {
            "source_root": str(root),
            "source_images": len(index),
            "source_bytes": source_bytes,
            "count": counts["written"] + counts["kept"],
            "unreadable": counts["unreadable"],
        }
    )
    log.info(
        "cache %s: %d written, %d already there, %d unreadable", cache.dir, counts["written"], counts["kept"],
        counts["unreadable"],
    )  # fmt: skip
    return counts
