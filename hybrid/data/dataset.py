"""Datasets: labelled images from a Sewer-ML style CSV, and unlabelled images from a folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from hybrid.data.cache import CacheFolder
from hybrid.data.decode import read_jpeg_bytes
from hybrid.data.files import FileTable, StringColumn, fixed_width
from hybrid.data.labels import LabelSpec, check_columns, encode_targets
from hybrid.data.transforms import ResizeUint8, read_image
from hybrid.errors import ConfigError, DataError
from hybrid.util.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

BAD_IMAGE_POLICIES = ("skip", "error")
NO_TARGET = -1


class ImageIndex:
    """Every image file name under a root and the folder it is in, as sorted arrays (see
    :mod:`hybrid.data.files`): ``locate`` finds the folders of many names at once."""

    def __init__(self, folders: list[str], folder_ids: np.ndarray, names: np.ndarray):
        self.folders = folders
        self.folder_ids = folder_ids  # aligned with names
        self.names = names  # sorted, unique, fixed-width UTF-8 bytes

    @classmethod
    def empty(cls) -> ImageIndex:
        """An index of no images."""
        return cls([], np.zeros(0, np.int32), fixed_width([]))

    def __len__(self) -> int:
        return len(self.names)

    def locate(self, names: Sequence[str]) -> np.ndarray:
        """The folder number of each of ``names`` (an index into :attr:`folders`), -1 where absent."""
        wanted = fixed_width(names)
        found = np.full(len(wanted), -1, np.int32)
        if not len(self.names) or not len(wanted):
            return found
        at = np.minimum(np.searchsorted(self.names, wanted), len(self.names) - 1)
        hit = self.names[at] == wanted
        found[hit] = self.folder_ids[at[hit]]
        return found

    def items(self) -> Iterator[tuple[str, str]]:
        """``(name, path)`` of every image, sorted by name."""
        for name, folder in zip(self.names, self.folder_ids, strict=True):
            text = name.decode("utf-8")
            yield text, os.path.join(self.folders[folder], text)


@lru_cache(maxsize=4)
def index_images(root: str) -> ImageIndex:
    """Every image file name under ``root`` (any depth) and its folder.

    Sewer-ML ships its frames in several extracted folders while the CSVs hold bare names, so
    images are found by name. The first of two files with the same name wins (logged).
    """
    folders: list[str] = []
    folder_ids: list[np.ndarray] = []
    names: list[str] = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        # Hidden folders are skipped: the prepared cache (.cache/) holds files of the same names.
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))  # a stable walk
        # Hidden files are skipped too: a temporary file a killed writer left behind.
        images = sorted(n for n in files if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))
        if images:
            folder_ids.append(np.full(len(images), len(folders), np.int32))
            folders.append(folder)
            names += images
    walked = fixed_width(names)
    del names
    unique, first = np.unique(walked, return_index=True)  # the first of each name in walk order
    duplicates = len(walked) - len(unique)
    if duplicates:
        log.warning("%d image names occur more than once under %s; the first of each is used", duplicates, root)
    ids = np.concatenate(folder_ids)[first] if folder_ids else np.zeros(0, np.int32)
    return ImageIndex(folders, ids, unique)


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
    return compact_integers(frame)


def compact_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns in the smallest type that holds their values (Sewer-ML's 0/1 codes: 1 byte
    instead of 8 per cell, ~125 MB less for its training CSV)."""
    for column in frame.select_dtypes("integer").columns:
        frame[column] = pd.to_numeric(frame[column], downcast="integer")
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
        files: FileTable,
        targets: np.ndarray,
        transform,
        in_channels: int,
        on_bad_image: str,
        img_size: int | None = None,
        cache: CacheFolder | None = None,
    ):
        check_bad_image_policy(on_bad_image)
        self.files = files
        self.targets = targets
        self.transform = transform
        self.in_channels = in_channels
        self.on_bad_image = on_bad_image
        self.img_size = img_size
        self.cache = cache
        self.cached = cache.for_rows(files) if cache is not None else None  # each row's entry
        self.decode_on_device = False
        self.resize = ResizeUint8(img_size) if img_size else None
        self.missing: list[str] = []

    @property
    def names(self) -> Sequence[str]:
        """Each row's image name (the CSV's ``Filename``; a folder's relative path)."""
        return self.files.names

    @property
    def paths(self) -> Sequence[str]:
        """Each row's image file."""
        return self.files.paths

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Sample ``key``: a row index, or (training) ``(row index, seed of its augmentation)``."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        try:
            entry = self.cached.lookup(i) if self.cached is not None else None
            if self.decode_on_device:
                encoded = entry.jpeg() if entry is not None else read_jpeg_bytes(self.paths[i])
                if encoded is not None:
                    return {"encoded": encoded, "target": self.target(i), "index": i}
            image = entry.image() if entry is not None else read_image(self.paths[i], self.in_channels, self.img_size)
        except (RuntimeError, OSError, ValueError) as err:
            if self.on_bad_image == "error":
                raise DataError(f"cannot read image {self.paths[i]}: {err}") from err
            return {"bad": self.names[i]}
        image = self.resize(image) if self.decode_on_device else self.augmented(image, seed)
        return {"image": image, "target": self.target(i), "index": i}

    def target(self, i: int) -> torch.Tensor:
        """Row ``i``'s target as the loss takes it: a class index, or a float32 0/1 row (multilabel
        targets are kept as uint8, see :func:`~hybrid.data.labels.encode_targets`)."""
        value = self.targets[i]
        return torch.as_tensor(value, dtype=torch.float32) if np.ndim(value) else torch.as_tensor(value)

    def augmented(self, image: torch.Tensor, seed: int | None) -> torch.Tensor:
        """``transform(image)``, with its random draws seeded by ``seed`` when given (and the
        process's own random state left as it was)."""
        if seed is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image)


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
        cache: CacheFolder | None = None,
    ):
        names = frame["Filename"].astype(str)
        # a bare name is found anywhere under root (Sewer-ML); a relative path (data=folder) as it is,
        # so a folder dataset never indexes by name (splits may share file names)
        nested = names.str.contains("/", regex=False).to_numpy()
        index = index_images(str(root)) if not nested.all() else ImageIndex.empty()
        folder_ids = np.full(len(names), -1, np.int32)
        folder_ids[~nested] = index.locate(names[~nested])
        root_id = len(index.folders)  # the data root itself, for relative paths
        folder_ids[nested] = [root_id if (root / n).is_file() else -1 for n in names[nested]]
        present = folder_ids >= 0
        missing = names[~present].tolist()
        if missing and on_bad_image == "error":
            raise DataError(f"{csv_path}: image {missing[0]} is not under {root}")
        kept = frame[present].reset_index(drop=True)
        labelled = set(spec.label_columns) <= set(frame.columns)
        if labelled and len(kept):
            targets = encode_targets(kept, spec, csv_path)
        else:
            targets = np.full(len(kept), NO_TARGET, np.int64)
        files = FileTable([*index.folders, str(root)], folder_ids[present], StringColumn(names[present]))
        super().__init__(files, targets, transform, in_channels, on_bad_image, img_size, cache)
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
        files = FileTable.in_folders(
            [str(folder) if folder.is_dir() else os.path.dirname(str(folder))] * len(paths), names
        )
        super().__init__(files, targets, transform, in_channels, on_bad_image, img_size)
