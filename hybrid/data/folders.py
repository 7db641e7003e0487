"""Image-folder datasets (``data=folder``): one sub-folder per class, the layout private inspection
datasets usually come in, read as the label frames the rest of the data package uses.

Either ``<root>/train``, ``<root>/val`` and ``<root>/test`` each hold one sub-folder per class, or
``<root>`` itself holds the class sub-folders and ``data.split_ratios`` splits every class the same
way (seeded by ``seed``). A frame's ``Filename`` is the image's path relative to ``root``; its
``label`` is the class (sub-folder) name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.errors import ConfigError, DataError
from hybrid.util.images import IMAGE_SUFFIXES

SPLIT_FOLDERS = {"train": "train", "val": "val", "test": "test"}
LABEL_COLUMN = "label"


def class_images(folder: Path, root: Path) -> list[tuple[str, str]]:
    """``(relative path, class)`` of every image in the class sub-folders of ``folder`` (any depth
    below each class folder; hidden files and folders skipped)."""
    rows = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for image in sorted(class_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in image.relative_to(folder).parts)
            if image.is_file() and image.suffix.lower() in IMAGE_SUFFIXES and not hidden:
                rows.append((image.relative_to(root).as_posix(), class_dir.name))
    return rows


def check_split_ratios(ratios) -> dict[str, float] | None:
    """``data.split_ratios``: ``null`` or train / val / test fractions that sum to 1."""
    if ratios is None:
        return None
    if not isinstance(ratios, Mapping) or set(ratios) != set(SPLIT_FOLDERS):
        raise ConfigError(
            f"data.split_ratios={ratios}; give train, val and test fractions, e.g. {{train: 0.7, val: 0.15, test: 0.15}}"
        )
    values = {split: float(ratios[split]) for split in SPLIT_FOLDERS}
    if any(v < 0 for v in values.values()) or abs(sum(values.values()) - 1) > 1e-6:
        raise ConfigError(f"data.split_ratios={dict(values)} must be non-negative and sum to 1")
    return values


def split_frames(rows: list[tuple[str, str]], ratios: Mapping[str, float], seed: int) -> dict[str, pd.DataFrame]:
    """Each class's images shuffled with ``seed`` and cut by ``ratios`` (so every split keeps the
    class balance)."""
    frame = pd.DataFrame(rows, columns=["Filename", LABEL_COLUMN])
    parts: dict[str, list[pd.DataFrame]] = {split: [] for split in SPLIT_FOLDERS}
    rng = np.random.default_rng(seed)
    for _, group in frame.groupby(LABEL_COLUMN, sort=True):
        group = group.iloc[rng.permutation(len(group))]
        cuts = np.round(np.cumsum([ratios[s] for s in SPLIT_FOLDERS]) * len(group)).astype(int)
        for split, start, stop in zip(SPLIT_FOLDERS, [0, *cuts[:-1]], cuts, strict=True):
            parts[split].append(group.iloc[start:stop])
    return {split: pd.concat(p).sort_values("Filename").reset_index(drop=True) for split, p in parts.items()}


def folder_frames(root: Path, ratios, seed: int) -> dict[str, pd.DataFrame]:
    """The train / val / test frames of an image-folder dataset under ``root``."""
    ratios = check_split_ratios(ratios)
    if ratios is None:
        frames = {}
        for split, name in SPLIT_FOLDERS.items():
            folder = root / name
            if not folder.is_dir():
                raise DataError(
                    f"data.root={root} has no {name}/ folder: give train/, val/ and test/ with one sub-folder per "
                    "class, or class sub-folders and data.split_ratios"
                )
            frames[split] = pd.DataFrame(class_images(folder, root), columns=["Filename", LABEL_COLUMN])
    else:
        frames = split_frames(class_images(root, root), ratios, seed)
    for split, frame in frames.items():
        if frame.empty:
            raise DataError(f"data.root={root}: no images for the {split} split (class sub-folders of images expected)")
    return frames
