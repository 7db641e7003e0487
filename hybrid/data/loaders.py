"""The data module: resolves the dataset, builds the splits and their device loaders."""

from __future__ import annotations

import logging
import os
import random
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hybrid.data.batch import BatchPreparer
from hybrid.data.cache import open_cache
from hybrid.data.dataset import CsvImageDataset, FolderImageDataset, ImageFileDataset, read_label_csv
from hybrid.data.decode import DeviceDecoder
from hybrid.data.device_loader import DeviceLoader, collate
from hybrid.data.folders import SPLIT_FOLDERS, folder_frames
from hybrid.data.labels import resolve_label_columns, resolve_label_spec
from hybrid.data.mixing import BatchMixer, MixSettings
from hybrid.data.samplers import split_sampler
from hybrid.data.synthetic import ensure_synthetic_dataset
from hybrid.data.transforms import BatchAugment, ResizeUint8, build_transform
from hybrid.errors import ConfigError, DataError
from hybrid.util import ranks
from hybrid.util.memory import release_freed_memory

if TYPE_CHECKING:  # the schema module checks the data config with this one's rules
    from hybrid.data.schema import DataSchema

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CSV_KEYS = {"train": "train_csv", "val": "valid_csv", "test": "test_csv"}
# data.num_workers=auto never starts more workers than this (more rarely pays and costs memory).
AUTO_MAX_WORKERS = 8
# ... and loads in the main process on machines this small (see resolve_workers).
AUTO_SERIAL_MAX_CPUS = 2


def split_ratio(sampling_ratio: float | Mapping, split: str) -> float:
    """``data.sampling_ratio`` for one split: a float for all, or a per-split map (default 1)."""
    ratio = sampling_ratio.get(split, 1.0) if isinstance(sampling_ratio, Mapping) else sampling_ratio
    if not 0 < float(ratio) <= 1:
        raise ConfigError(f"data.sampling_ratio for {split} must be in (0, 1], got {ratio}")
    return float(ratio)


def sample_rows(frame: pd.DataFrame, ratio: float, seed: int, split: str) -> pd.DataFrame:
    """A seeded random subset of rows, kept in CSV order; each split draws independently."""
    if ratio >= 1:
        return frame
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    count = max(1, round(len(frame) * ratio))
    rows = np.sort(rng.choice(len(frame), size=count, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


# data.rows: which rows of the train and val splits a run learns from and selects on. defective: the
# images with at least one label (the Sewer-ML benchmark's defect-only second stage); test keeps all.
ROWS = ("all", "defective")


def check_rows(rows: str, task: str) -> None:
    """``data.rows`` must be one of :data:`ROWS`; ``defective`` only means something for multilabel."""
    if rows not in ROWS:
        raise ConfigError(f"data.rows={rows!r}; choose one of {list(ROWS)}")
    if rows == "defective" and task != "multilabel":
        raise ConfigError(f"data.rows=defective (the defect-only stage) needs data.task=multilabel, not {task}")


def select_rows(frame: pd.DataFrame, rows: str, label_columns: Sequence[str], split: str, source: Path) -> pd.DataFrame:
    """The rows of a split that ``data.rows`` keeps (the test split is never filtered)."""
    if rows == "all" or split == "test":
        return frame
    defective = frame[list(label_columns)].to_numpy(dtype=np.float64).max(axis=1) >= 0.5
    if not defective.any():
        raise DataError(f"data.rows=defective: {source} has no row with a label in {list(label_columns)}")
    return frame[defective].reset_index(drop=True)


# Folds are drawn with this seed whatever the run's `seed`, so repeating a fold over seeds keeps its rows.
FOLD_SEED = 0


def check_folds(fold, num_folds) -> tuple[int, int] | None:
    """``data.fold`` / ``data.num_folds``: both null (the CSVs' own validation split), or a fold
    ``0 <= fold < num_folds`` with ``num_folds >= 2``."""
    if fold is None and num_folds is None:
        return None
    if fold is None or num_folds is None:
        raise ConfigError("data.fold and data.num_folds go together (e.g. data.fold=0 data.num_folds=5)")
    if int(num_folds) < 2 or not 0 <= int(fold) < int(num_folds):
        raise ConfigError(f"data.fold={fold} data.num_folds={num_folds}: need num_folds >= 2 and 0 <= fold < num_folds")
    return int(fold), int(num_folds)


def stratification_key(frame: pd.DataFrame, label_columns: Sequence[str], single_label: bool) -> np.ndarray:
    """What folds are stratified on: the class (single-label), or an image's rarest label (multi-label;
    ``none`` for an image without one), so rare codes spread over every fold."""
    labels = frame[list(label_columns)]
    if single_label:
        return labels.iloc[:, 0].astype(str).to_numpy()
    present = labels.to_numpy(dtype=np.float64) >= 0.5
    order = np.argsort(present.sum(axis=0), kind="stable")  # rarest column first
    first = np.where(present[:, order].any(axis=1), order[np.argmax(present[:, order], axis=1)], -1)
    return np.array(["none" if k < 0 else label_columns[k] for k in first])


def fold_rows(frame: pd.DataFrame, split: str, fold: int, num_folds: int, key: np.ndarray) -> pd.DataFrame:
    """The training CSV's rows for ``split``: fold ``fold`` of ``num_folds`` stratified folds is the
    validation split, the others the training split (each kept in CSV order)."""
    from sklearn.model_selection import StratifiedKFold

    values, counts = np.unique(key, return_counts=True)
    key = np.where(np.isin(key, values[counts < num_folds]), "rare", key)  # too few to spread: pooled
    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=FOLD_SEED)
    train_rows, val_rows = list(folds.split(np.zeros(len(key)), key))[fold]
    rows = np.sort(val_rows if split == "val" else train_rows)
    return frame.iloc[rows].reset_index(drop=True)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(value) -> int:
    """``data.num_workers``: a count, or ``auto``: none on up to ``AUTO_SERIAL_MAX_CPUS`` cores, else
    half the cores (at most ``AUTO_MAX_WORKERS``). On 2 cores a worker process takes its time slices
    from the 2 compute threads and stalls both at every OpenMP barrier; loading in the main process
    costs only the few ms per image of the uint8 path (measured: 87% / 95% of the model-alone
    ceiling for training / inference without a worker, 81% / 72% with one)."""
    if str(value) == "auto":
        cpus = available_cpus()
        return 0 if cpus <= AUTO_SERIAL_MAX_CPUS else min(AUTO_MAX_WORKERS, cpus // 2)
    try:
        workers = int(value)
    except (TypeError, ValueError):
        workers = -1
    if workers < 0:
        raise ConfigError(f"data.num_workers={value!r}; use a count >= 0 or auto")
    return workers


def check_batch_size(value) -> int:
    """``data.batch_size``: a count of at least 1."""
    if int(value) < 1:
        raise ConfigError(f"data.batch_size must be at least 1, got {value}")
    return int(value)


def make_loader(
    dataset: Dataset,
    settings: DataSchema,
    *,
    train: bool,
    seed: int,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    sampler: Sampler | None = None,
) -> DeviceLoader:
    """A :class:`DeviceLoader` over ``dataset``: shuffled and seeded for training, in order
    otherwise; ``sampler`` (see :func:`~hybrid.data.samplers.split_sampler`) replaces the shuffle.

    Batches leave the workers as uint8 (pinned when the device is CUDA, so the copy is
    asynchronous) and reach the caller on ``device``, normalized as ``settings`` says. With
    ``data.decode=cuda`` the workers ship JPEG bytes, decoded on ``device``.
    """
    device = torch.device(device)
    decoder = None
    if settings.decode == "cuda" and isinstance(dataset, ImageFileDataset):
        dataset.decode_on_device = True  # the workers only read (and resize what they must decode)
        augment = (
            BatchAugment.from_config(settings.augment, settings.in_channels) if train and settings.augment else None
        )
        decoder = DeviceDecoder(ResizeUint8(settings.img_size), augment, settings.in_channels, device)
    generator = torch.Generator()
    generator.manual_seed(seed + ranks.rank())  # different augmentation streams per rank
    workers = resolve_workers(settings.num_workers)
    batch_size = check_batch_size(settings.batch_size)
    per_process = len(sampler) if sampler is not None else len(dataset)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train and per_process > batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,  # validation every epoch (and benchmarks) keep their workers
        pin_memory=device.type == "cuda",
        collate_fn=collate,
        worker_init_fn=_seed_worker,
        generator=generator,
    )
    preparer = BatchPreparer.from_config(settings)
    return DeviceLoader(loader, preparer, device, channels_last=channels_last, train=train, decoder=decoder)


def check_root(settings: DataSchema) -> Path:
    """``data.root`` of a real dataset must exist (a synthetic one is generated there on first use)."""
    root = Path(str(settings.root)).expanduser().resolve()
    if not settings.synthetic and not root.is_dir():
        raise ConfigError(f"data.root={settings.root} does not exist; download the data there or set data.root")
    return root


def dataset_root(settings: DataSchema, *, progress: bool = True) -> Path:
    """The data folder: generated first for synthetic data, otherwise it must exist."""
    root = check_root(settings)
    if settings.synthetic:
        return ensure_synthetic_dataset(root, settings.synthetic, progress=progress).resolve()
    return root


def eval_transform(settings: DataSchema):
    """Resize (uint8), as for validation and test; normalization happens on the batch."""
    return build_transform(settings.img_size, settings.in_channels)


def folder_dataset(settings: DataSchema, folder: str | Path, transform=None) -> FolderImageDataset:
    """Every image under ``folder`` (no labels), through ``transform`` (default: the evaluation
    transform of ``settings``)."""
    path = Path(str(folder)).expanduser().resolve()
    transform = transform or eval_transform(settings)
    return FolderImageDataset(path, transform, settings.in_channels, settings.on_bad_image, int(settings.img_size))


class DataModule:
    """Builds the train / val / test datasets and the loaders that hand their batches to the model
    on ``device``, ready (see :class:`~hybrid.data.device_loader.DeviceLoader`)."""

    def __init__(
        self,
        settings: DataSchema,
        seed: int,
        class_names: list[str] | None = None,
        *,
        negative_class: str | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ):
        self.settings = settings
        self.seed = seed
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.root = dataset_root(settings)
        self.label_columns = resolve_label_columns(settings.task, settings.label_columns)
        self._frames: dict[str, pd.DataFrame] = {}
        names = class_names or settings.class_names
        needs_train_csv = settings.task == "multiclass" and not names
        self.spec = resolve_label_spec(
            settings.task,
            self.label_columns,
            names,
            self.frame("train") if needs_train_csv else None,
            negative_class or settings.negative_class,
            negative_required_of_two=self.from_folders,
        )
        self.eval_transform = eval_transform(settings)
        self.train_transform = build_transform(settings.img_size, settings.in_channels, settings.augment)
        self.cache = open_cache(settings, self.root)

    @property
    def spec_is_single_label(self) -> bool:
        """Whether each image has one class (the folds' stratification); known before :attr:`spec`."""
        return self.settings.task != "multilabel"

    @property
    def mixer(self) -> BatchMixer | None:
        """Mixup / CutMix of the training batches (``data.mixup``, ``data.cutmix``), or ``None``."""
        mix = MixSettings.of(self.settings)
        if not mix.enabled:
            return None
        return BatchMixer(mix, self.spec.num_labels if self.spec.single_label else None)

    @property
    def from_folders(self) -> bool:
        """``data=folder``: labels are the class sub-folders (:mod:`hybrid.data.folders`), not CSVs."""
        return self.settings.layout == "folders"

    def csv_path(self, split: str) -> Path:
        """Path of a split's label CSV (``data.*_csv`` is relative to ``data.root``); for an image-folder
        dataset, the split's folder (or the root, split by ``data.split_ratios``)."""
        if self.from_folders:
            return self.root if self.settings.split_ratios else self.root / SPLIT_FOLDERS[split]
        value = getattr(self.settings, CSV_KEYS[split])
        if not value:
            raise DataError(f"data.{CSV_KEYS[split]} is not set")
        return self.root / str(value)

    def label_notes(self) -> list[str]:
        """Lines to read before training on these labels: multi-label codes without a positive in
        the train or validation labels (their F1 is 0 in every macro figure), and a test split that
        is the validation CSV which chose the best epoch (its figures are not held out)."""
        notes = []
        if not self.spec_is_single_label:
            for split in ("train", "val"):
                frame = self.frame(split)
                absent = [c for c in self.label_columns if not (frame[c].to_numpy(dtype=np.float64) >= 0.5).any()]
                if absent:
                    notes.append(
                        f"the {split} labels have no positive for {len(absent)} of {len(self.label_columns)} codes "
                        f"({', '.join(absent)}): their F1 is 0 in every macro figure; f1_macro_present averages "
                        "the codes a split's labels have"
                    )
        folds = check_folds(self.settings.fold, self.settings.num_folds)
        if not self.from_folders and not folds and self.csv_path("test") == self.csv_path("val"):
            notes.append(
                f"the test split is {self.csv_path('test').name}, the validation CSV that chose the best epoch: "
                "its test figures are not held out (hold out part of training, e.g. data.num_folds, to report on)"
            )
        return notes

    def has_labels(self, split: str) -> bool:
        """Whether a split's CSV holds the label columns (a test CSV may not, at inference)."""
        return set(self.label_columns) <= set(self.frame(split, require_labels=False).columns)

    def frame(self, split: str, *, require_labels: bool = True) -> pd.DataFrame:
        """The rows of a split after ``data.rows`` and ``data.sampling_ratio``."""
        if split not in self._frames:
            folds = check_folds(self.settings.fold, self.settings.num_folds)
            if self.from_folders:
                frame = folder_frames(self.root, self.settings.split_ratios, self.seed)[split]
            elif folds and split in ("train", "val"):  # cross-validation: both splits from the training CSV
                source = self.csv_path("train")
                frame = read_label_csv(source, self.label_columns)
                frame = select_rows(frame, self.settings.rows, self.label_columns, split, source)
                key = stratification_key(frame, self.label_columns, self.spec_is_single_label)
                frame = fold_rows(frame, split, *folds, key)
                log.info("%s: %d rows, %s of %d stratified folds of %s", split, len(frame),
                         f"fold {folds[0]}" if split == "val" else f"all but fold {folds[0]}", folds[1], source)  # fmt: skip
            else:
                frame = read_label_csv(self.csv_path(split), self.label_columns, require_labels=require_labels)
                frame = select_rows(frame, self.settings.rows, self.label_columns, split, self.csv_path(split))
            ratio = split_ratio(self.settings.sampling_ratio, split)
            self._frames[split] = sample_rows(frame, ratio, self.seed, split)
        return self._frames[split]

    def dataset(self, split: str) -> CsvImageDataset:
        """The dataset of one split (unlabelled when its CSV has no label columns)."""
        transform = self.train_transform if split == "train" else self.eval_transform
        dataset = self.csv_dataset(split, self.frame(split), transform)
        release_freed_memory()  # the CSV parser's and the file index's buffers (Sewer-ML: ~80 MB)
        return dataset

    def sample(self, split: str, count: int, seed: int) -> CsvImageDataset:
        """``count`` rows of a split drawn with ``seed`` (all of them when it holds fewer), read
        through the evaluation transform: the calibration and verification sets of an export."""
        frame = self.frame(split)
        if count < len(frame):
            frame = frame.sample(n=count, random_state=seed).sort_index()
        return self.csv_dataset(split, frame, self.eval_transform)

    def csv_dataset(self, split: str, frame: pd.DataFrame, transform) -> CsvImageDataset:
        """The images of ``frame`` (rows of a split's CSV) through ``transform``."""
        return CsvImageDataset(
            frame,
            self.csv_path(split),
            self.root,
            self.spec,
            transform,
            self.settings.in_channels,
            self.settings.on_bad_image,
            int(self.settings.img_size),
            self.cache,
        )

    def loader(self, split: str, dataset: Dataset | None = None) -> DeviceLoader:
        """A loader for a split (or for ``dataset``, evaluated in order); under DDP each process
        reads its share (``data.batch_size`` is per process)."""
        dataset = dataset if dataset is not None else self.dataset(split)
        train = split == "train"
        return make_loader(
            dataset,
            self.settings,
            train=train,
            seed=self.seed,
            device=self.device,
            channels_last=self.channels_last,
            sampler=split_sampler(dataset, train=train, seed=self.seed, sampler=str(self.settings.sampler)),
        )
