"""Per-row file names and paths held in a few numpy arrays, not in Python lists of strings.

At Sewer-ML's 1.3 M rows a list of names and one of paths are millions of Python objects: hundreds
of MB in the training process, and copied page by page into every forked loader worker as their
reference counts are touched. Here a column of strings is one UTF-8 byte buffer and its offsets
(the layout Arrow uses), and a path is a folder number plus the row's name: a handful of arrays that
forked workers share as they are, whatever they read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np


class StringColumn(Sequence):
    """Strings as one UTF-8 buffer and their offsets: ``column[i]`` is the i-th as a ``str``."""

    def __init__(self, values: Iterable[str]):
        encoded = [value.encode("utf-8") for value in values]
        self.offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(value) for value in encoded], out=self.offsets[1:])
        self.buffer = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        return self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")


def fixed_width(values: Iterable[str]) -> np.ndarray:
    """Strings as one fixed-width UTF-8 ``bytes`` array (numpy sorts and searches it vectorized;
    UTF-8 keeps the strings' order)."""
    encoded = [value.encode("utf-8") for value in values]
    return np.array(encoded) if encoded else np.zeros(0, "S1")


class FileTable:
    """The files of a dataset's rows: ``names[i]`` (what the CSV or the folder calls it) and
    ``paths[i]`` (``folders[folder_ids[i]]`` joined with ``names[i]``)."""

    def __init__(self, folders: Sequence[str], folder_ids: np.ndarray, names: StringColumn):
        if len(folder_ids) != len(names):
            raise ValueError(f"{len(folder_ids)} folder ids for {len(names)} names")
        self.folders = tuple(folders)
        self.folder_ids = np.asarray(folder_ids, np.int32)
        self.names = names
        self.paths = PathColumn(self)

    @classmethod
    def in_folders(cls, folders: Sequence[str], names: Iterable[str]) -> FileTable:
        """Rows ``os.path.join(folder, name)`` for aligned ``folders`` and ``names`` (the folders repeat)."""
        numbers: dict[str, int] = {}
        ids = np.fromiter((numbers.setdefault(folder, len(numbers)) for folder in folders), np.int32)
        return cls(list(numbers), ids, StringColumn(names))

    def __len__(self) -> int:
        return len(self.names)

    def path(self, i: int) -> str:
        """Where row ``i``'s file is."""
        return os.path.join(self.folders[self.folder_ids[i]], self.names[i])


class PathColumn(Sequence):
    """``table.paths[i]``: the path of row ``i``, joined when asked for."""

    def __init__(self, table: FileTable):
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.table.path(int(i) + len(self) if int(i) < 0 else int(i))
