"""Datasets: labelled images from a Sewer-ML style CSV, and unlabelled images from a folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hybrid.data.cache import ImageCache
from hybrid.data.decode import read_jpeg_bytes
from hybrid.data.labels import LabelSpec, check_columns, encode_targets
from hybrid.data.transforms import ResizeUint8, read_image
from hybrid.errors import ConfigError, DataError
from hybrid.util.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

BAD_IMAGE_POLICIES = ("skip", "error")
NO_TARGET = -1


@lru_cache(maxsize=4)
def index_images(root: str) -> dict[str, str]:
    """Map every image file name under ``root`` (any depth) to its path.

    Sewer-ML ships its frames in several extracted folders while the CSVs hold bare names, so
    images are found by name. The first of two files with the same name wins (logged).
    """
    found: dict[str, str] = {}
    duplicates = 0
    for folder, subfolders, files in os.walk(root, followlinks=True):
        # Hidden folders are skipped: the prepared cache (.cache/) holds files of the same names.
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))  # a stable walk
        for name in sorted(files):
            # Hidden files are skipped too: a temporary file a killed writer left behind.
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                if name in found:
                    duplicates += 1
                    continue
                found[name] = os.path.join(folder, name)
    if duplicates:
        log.warning("%d image names occur more than once under %s; the first of each is used", duplicates, root)
    return found


def check_bad_image_policy(policy: str) -> str:
    """``data.on_bad_image``: ``skip`` (count and name the image) or ``error`` (stop on it)."""
    if policy not in BAD_IMAGE_POLICIES:
        raise ConfigError(f"data.on_bad_image={policy!r}; choose one of {list(BAD_IMAGE_POLICIES)}")
    return policy


def read_label_csv(csv_path: Path, label_columns: Sequence[str], *, require_labels: bool = True) -> pd.DataFrame:
    """Read a label CSV, checking its ``Filename`` column (present, unique, no empty names, no
    path leaving the data root) and, when ``require_labels``, the label columns."""
    if not csv_path.is_file():
        raise DataError(f"label CSV not found: {csv_path}")
    frame = pd.read_csv(csv_path, dtype={"Filename": str}, keep_default_na=False)
    check_columns(frame, label_columns if require_labels else (), csv_path)
    check_file_names(frame["Filename"], csv_path)
    return frame


def check_file_names(names: pd.Series, csv_path: Path) -> None:
    """Raise on empty or duplicate names, and on names that would leave the data root."""
    empty = names.str.strip() == ""
    if empty.any():
        raise DataError(f"{csv_path}: row {int(np.flatnonzero(empty)[0]) + 2} has an empty Filename")
    duplicated = names.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"{csv_path}: row {row + 2} repeats Filename {names.iloc[row]}")
    escaping = names.map(lambda n: n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/"))
    if escaping.any():
        row = int(np.flatnonzero(escaping)[0])
        raise DataError(f"{csv_path}: row {row + 2} Filename {names.iloc[row]} points outside data.root")


class ImageFileDataset(Dataset):
    """Image files with targets: items are dicts ``{"image", "target", "index"}``.

    With ``on_bad_image="skip"`` an unreadable image yields ``{"bad": name}`` instead, which
    :func:`hybrid.data.loaders.collate` drops and counts; with ``"error"`` it raises naming the file.
    ``img_size`` (the side the transform resizes to) lets large JPEGs decode at a reduced scale;
    with a prepared ``cache`` an image is read from its fresh cache entry when there is one.
    With ``decode_on_device`` (set by the loader for ``data.decode=cuda``) a JPEG source yields its
    file bytes as ``{"encoded", "target", "index"}`` and any other image is only resized: decoding
    the rest and augmenting happen on the device (:class:`~hybrid.data.decode.DeviceDecoder`).
    """

    def __init__(
        self,
        paths: list[str],
        names: list[str],
        targets: np.ndarray,
        transform,
        in_channels: int,
        on_bad_image: str,
        img_size: int | None = None,
        cache: ImageCache | None = None,
    ):
        check_bad_image_policy(on_bad_image)
        self.paths = paths
        self.names = names
        self.targets = targets
        self.transform = transform
        self.in_channels = in_channels
        self.on_bad_image = on_bad_image
        self.img_size = img_size
        self.cache = cache
        self.decode_on_device = False
        self.resize = ResizeUint8(img_size) if img_size else None
        self.missing: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Sample ``key``: a row index, or (training) ``(row index, seed of its augmentation)``."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        try:
            encoded = self.encoded(i) if self.decode_on_device else None
            if encoded is not None:
                return {"encoded": encoded, "target": torch.as_tensor(self.targets[i]), "index": i}
            image = self.decode(i)
        except (RuntimeError, OSError, ValueError) as err:
            if self.on_bad_image == "error":
                raise DataError(f"cannot read image {self.paths[i]}: {err}") from err
            return {"bad": self.names[i]}
        image = self.resize(image) if self.decode_on_device else self.augmented(image, seed)
        return {"image": image, "target": torch.as_tensor(self.targets[i]), "index": i}

    def augmented(self, image: torch.Tensor, seed: int | None) -> torch.Tensor:
        """``transform(image)``, with its random draws seeded by ``seed`` when given (and the
        process's own random state left as it was)."""
        if seed is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image)

    def source(self, i: int) -> str:
        """Where image ``i`` is read from: its fresh cache entry, else the source file."""
        if self.cache is not None:
            cached = self.cache.fresh(self.names[i], self.paths[i])
            if cached is not None:
                return str(cached)
        return self.paths[i]

    def encoded(self, i: int) -> torch.Tensor | None:
        """The bytes of image ``i`` when it is a JPEG (a source file or a ``jpg`` cache entry)."""
        return read_jpeg_bytes(self.source(i))

    def decode(self, i: int) -> torch.Tensor:
        """Image ``i`` as uint8 ``[C, H, W]``: its cache entry when fresh, else the source file."""
        if self.cache is not None:
            cached = self.cache.fresh(self.names[i], self.paths[i])
            if cached is not None:
                return self.cache.read(cached)
        return read_image(self.paths[i], self.in_channels, self.img_size)


class CsvImageDataset(ImageFileDataset):
    """Images named in a label CSV, found anywhere under ``root``.

    Rows whose file does not exist are dropped up front and listed in ``missing`` (or raise, with
    ``on_bad_image="error"``).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        csv_path: Path,
        root: Path,
        spec: LabelSpec,
        transform,
        in_channels: int = 3,
        on_bad_image: str = "skip",
        img_size: int | None = None,
        cache: ImageCache | None = None,
    ):
        names = frame["Filename"].astype(str).tolist()
        # a bare name is found anywhere under root (Sewer-ML); a relative path (data=folder) as it is,
        # so a folder dataset never indexes by name (splits may share file names)
        index = index_images(str(root)) if any("/" not in n for n in names) else {}
        located = {n: str(root / n) if (root / n).is_file() else None for n in names if "/" in n}
        located.update({n: index.get(n) for n in names if "/" not in n})
        present = np.array([located[n] is not None for n in names], dtype=bool)
        missing = [n for n, ok in zip(names, present, strict=True) if not ok]
        if missing and on_bad_image == "error":
            raise DataError(f"{csv_path}: image {missing[0]} is not under {root}")
        kept = frame[present].reset_index(drop=True)
        kept_names = kept["Filename"].astype(str).tolist()
        labelled = set(spec.label_columns) <= set(frame.columns)
        if labelled and len(kept):
            targets = encode_targets(kept, spec, csv_path)
        else:
            targets = np.full(len(kept), NO_TARGET, np.int64)
        paths = [located[n] for n in kept_names]
        super().__init__(paths, kept_names, targets, transform, in_channels, on_bad_image, img_size, cache)
        self.csv_path = csv_path
        self.spec = spec
        self.missing = missing


class FolderImageDataset(ImageFileDataset):
    """Every image file under a folder (sorted by relative path), or one image file, without labels."""

    def __init__(
        self, folder: Path, transform, in_channels: int = 3, on_bad_image: str = "skip", img_size: int | None = None
    ):
        if folder.is_file() and folder.suffix.lower() in IMAGE_SUFFIXES:
            paths, names = [str(folder)], [folder.name]
        elif folder.is_dir():
            paths = sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise DataError(f"input={folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            names = [os.path.relpath(p, folder) for p in paths]
        elif not folder.exists():
            raise DataError(f"input={folder}: no such file or folder")
        else:
            raise DataError(f"input={folder} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a folder")
        targets = np.full(len(paths), NO_TARGET, np.int64)
        super().__init__(paths, names, targets, transform, in_channels, on_bad_image, img_size)
