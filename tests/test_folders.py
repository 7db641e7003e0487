"""Image-folder datasets (data=folder): class sub-folders per split, or one folder split by ratios."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from hybrid.config import check_train_config
from hybrid.data.loaders import DataModule
from hybrid.errors import ConfigError, DataError
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def class_folders(tiny_data, tmp_path_factory):
    """The tiny synthetic images sorted into <split>/<class>/ and, for the ratio layout, <class>/."""
    by_split, by_class = tmp_path_factory.mktemp("by_split"), tmp_path_factory.mktemp("by_class")
    for split, csv in (("train", "SewerML_Train.csv"), ("val", "SewerML_Val.csv"), ("test", "SewerML_Test.csv")):
        for row in pd.read_csv(tiny_data / csv).itertuples():
            image = next(tiny_data.rglob(row.Filename))
            label = "Defect" if row.Defect else "Normal"
            for folder in (by_split / split / label, by_class / label):
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(image, folder / image.name)
    return by_split, by_class


def folder_data(root, *extra: str) -> DataModule:
    cfg = compose_config(
        overrides=["data=folder", f"data.root={root}", "model.img_size=64", "data.num_workers=0", *extra]
    )
    check_train_config(cfg)
    return DataModule(cfg.data, int(cfg.seed))


def test_split_folders_give_classes_and_ready_batches(class_folders):
    data = folder_data(class_folders[0])
    assert list(data.spec.class_names) == ["Defect", "Normal"]
    assert [len(data.frame(s)) for s in ("train", "val", "test")] == [48, 24, 26]
    assert data.frame("test").Filename.str.startswith("test/").all()
    batch = next(iter(data.loader("test")))
    assert batch["image"].shape == (16, 3, 64, 64) and batch["image"].dtype == torch.float32
    normal = data.frame("test").label.eq("Normal").to_numpy()
    assert (data.dataset("test").targets == normal.astype(int)).all()  # Defect 0, Normal 1: sorted names


def test_one_folder_is_split_by_ratios_per_class_and_seed(class_folders):
    ratios = "data.split_ratios={train: 0.5, val: 0.25, test: 0.25}"
    data = folder_data(class_folders[1], ratios)
    frames = {s: data.frame(s) for s in ("train", "val", "test")}
    assert sum(len(f) for f in frames.values()) == 98
    assert not set(frames["train"].Filename) & set(frames["test"].Filename)
    for frame in frames.values():  # both classes in every split
        assert set(frame.label) == {"Defect", "Normal"}
    again = folder_data(class_folders[1], ratios).frame("train")
    other = folder_data(class_folders[1], ratios, "seed=7").frame("train")
    assert again.equals(frames["train"]) and not other.Filename.equals(frames["train"].Filename)


def test_folder_layout_mistakes_stop_with_one_line(class_folders):
    with pytest.raises(DataError, match=r"has no train/ folder: give train/, val/ and test/"):
        folder_data(class_folders[1]).frame("train")
    with pytest.raises(ConfigError, match=r"must be non-negative and sum to 1"):
        folder_data(class_folders[1], "data.split_ratios={train: 0.5, val: 0.5, test: 0.5}")
