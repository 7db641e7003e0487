"""What the labels of a dataset mean: task kind, class names, and CSV columns to read them from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.data.sewerml import BINARY_CLASSES
from hybrid.decisions import finding_classes, positive_index, resolve_negative_class
from hybrid.errors import ConfigError, DataError

TASKS = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class LabelSpec:
    """The classes a model predicts and how to read them from a label CSV."""

    task: str
    class_names: tuple[str, ...]
    label_columns: tuple[str, ...]
    # The class that means "no defect" (single-label tasks; None: none, e.g. digits, or multilabel,
    # whose normal images are those without a label).
    negative_class: str | None = None

    @property
    def num_labels(self) -> int:
        """Number of model outputs."""
        return len(self.class_names)

    @property
    def single_label(self) -> bool:
        """One class per image (softmax) rather than independent classes (sigmoid)."""
        return self.task != "multilabel"

    @property
    def negative_index(self) -> int | None:
        """Index of :attr:`negative_class` among the classes, or ``None``."""
        return None if self.negative_class is None else self.class_names.index(self.negative_class)

    @property
    def positive_index(self) -> int | None:
        """For two classes with a negative one, the other (the defect class a threshold decides on)."""
        return positive_index(self.class_names, self.negative_class)

    @property
    def event_classes(self) -> list[tuple[str, int]]:
        """``(name, index)`` of the classes whose presence is a finding (video events)
        (:func:`hybrid.decisions.finding_classes`)."""
        return finding_classes(self.class_names, self.negative_class)


def resolve_label_columns(task: str, label_columns: Sequence[str] | None) -> tuple[str, ...]:
    """The CSV columns holding the labels of ``data.task`` (binary defaults to ``Defect``)."""
    if task not in TASKS:
        raise ConfigError(f"data.task={task!r} is unknown; choose one of {list(TASKS)}")
    columns = tuple(label_columns or ())
    if task == "binary":
        columns = columns or ("Defect",)
    if task != "multilabel" and len(columns) != 1:
        raise ConfigError(f"data.task={task} reads one label column, got data.label_columns={list(columns)}")
    if not columns:
        raise ConfigError("data.task=multilabel needs data.label_columns (one 0/1 column per class)")
    return columns


def resolve_label_spec(
    task: str,
    label_columns: Sequence[str] | None,
    class_names: Sequence[str] | None,
    train_frame: pd.DataFrame | None = None,
    negative_class: str | None = None,
    *,
    negative_required_of_two: bool = False,
) -> LabelSpec:
    """Build the :class:`LabelSpec` for ``data.task``, its negative class included
    (:func:`hybrid.decisions.resolve_negative_class`).

    ``multiclass`` without ``data.class_names`` takes the sorted distinct values of its label
    column in the training CSV, so the class order is stable across runs (which class is negative
    does not depend on that order).
    """
    columns = resolve_label_columns(task, label_columns)
    if task == "binary":
        class_names = class_names or BINARY_CLASSES
    elif task == "multiclass" and not class_names:
        if train_frame is None:
            raise DataError("data.task=multiclass needs data.class_names or a training CSV to read them from")
        class_names = sorted(str(v) for v in train_frame[columns[0]].dropna().unique())
    names = tuple(str(c) for c in (class_names or columns))
    negative = resolve_negative_class(task, names, negative_class, required_of_two=negative_required_of_two)
    return LabelSpec(task, names, columns, negative)


def check_columns(frame: pd.DataFrame, columns: Sequence[str], csv_path: Path) -> None:
    """Raise if the CSV lacks ``Filename`` or a label column."""
    missing = [c for c in ("Filename", *columns) if c not in frame.columns]
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {missing}; found {list(frame.columns)}")


def encode_targets(frame: pd.DataFrame, spec: LabelSpec, csv_path: Path) -> np.ndarray:
    """Targets for every row: class indices (``int64``) or a 0/1 matrix (multilabel; ``uint8``, a
    quarter of float32's memory at Sewer-ML's 1 M x 17: the dataset hands out each row as float32)."""
    if spec.task == "multiclass":
        return _encode_class_column(frame[spec.label_columns[0]], spec, csv_path)
    values = frame[list(spec.label_columns)]
    bad = ~values.isin([0, 1]).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{csv_path}: row {row + 2} ({frame['Filename'].iloc[row]}) has a label outside {{0, 1}} "
            f"in {list(spec.label_columns)}: {values.iloc[row].tolist()}"
        )
    if spec.task == "binary":
        return values.iloc[:, 0].to_numpy(np.int64)
    return values.to_numpy(np.uint8)


def _encode_class_column(column: pd.Series, spec: LabelSpec, csv_path: Path) -> np.ndarray:
    by_name = {name: i for i, name in enumerate(spec.class_names)}
    out = np.empty(len(column), np.int64)
    for row, value in enumerate(column):
        key = str(value)
        if key in by_name:
            out[row] = by_name[key]
        elif isinstance(value, int | np.integer) and 0 <= value < spec.num_labels:
            out[row] = int(value)
        else:
            raise DataError(
                f"{csv_path}: row {row + 2} has class {value!r} in column {column.name!r}, "
                f"not one of {list(spec.class_names)}"
            )
    return out
