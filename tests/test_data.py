"""Label CSVs, image lookup, sampling, transforms and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hybrid.data.dataset import CsvImageDataset, FolderImageDataset, index_images, read_label_csv
from hybrid.data.device_loader import collate
from hybrid.data.labels import resolve_label_spec
from hybrid.data.loaders import DataModule, sample_rows, split_ratio
from hybrid.data.schema import AugmentSchema, check_data_config, data_settings
from hybrid.data.transforms import build_transform
from hybrid.errors import ConfigError, DataError
from hybrid.video.sampling import find_videos
from tests.conftest import compose_config, tiny_overrides

EVAL = build_transform(32, 3)


def write_images(folder, names, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size[1], size[0], 3), i * 20, np.uint8)).save(folder / name)


@pytest.fixture
def nested(tmp_path):
    """Sewer-ML-like layout: images in several sub-folders, bare names in the CSV."""
    write_images(tmp_path / "train00", ["00000001.png", "00000002.png"])
    write_images(tmp_path / "train01" / "deeper", ["00000003.png"])
    frame = pd.DataFrame({"Filename": ["00000001.png", "00000002.png", "00000003.png"], "Defect": [0, 1, 1]})
    frame.to_csv(tmp_path / "labels.csv", index=False)
    index_images.cache_clear()
    return tmp_path


def test_images_are_found_by_name_at_any_depth(nested):
    spec = resolve_label_spec("binary", None, None)
    frame = read_label_csv(nested / "labels.csv", spec.label_columns)
    ds = CsvImageDataset(frame, nested / "labels.csv", nested, spec, EVAL)
    assert len(ds) == 3 and ds.paths[2].endswith("train01/deeper/00000003.png")
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.uint8
    assert int(item["target"]) == 1
    assert spec.class_names == ("Normal", "Defect")


def test_missing_image_is_skipped_or_named(nested):
    frame = pd.DataFrame({"Filename": ["00000001.png", "gone.png"], "Defect": [0, 1]})
    spec = resolve_label_spec("binary", None, None)
    ds = CsvImageDataset(frame, nested / "x.csv", nested, spec, EVAL, on_bad_image="skip")
    assert len(ds) == 1 and ds.missing == ["gone.png"]
    with pytest.raises(DataError, match=r"x.csv: image gone.png is not under"):
        CsvImageDataset(frame, nested / "x.csv", nested, spec, EVAL, on_bad_image="error")


def test_unreadable_image_is_dropped_from_the_batch(nested):
    (nested / "train00" / "00000002.png").write_bytes(b"not a png")
    spec = resolve_label_spec("binary", None, None)
    frame = read_label_csv(nested / "labels.csv", spec.label_columns)
    ds = CsvImageDataset(frame, nested / "labels.csv", nested, spec, EVAL)
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["skipped"] == ["00000002.png"]
    assert batch["image"].shape[0] == 2 and batch["index"].tolist() == [0, 2]
    strict = CsvImageDataset(frame, nested / "labels.csv", nested, spec, EVAL, on_bad_image="error")
    with pytest.raises(DataError, match=r"cannot read image .*00000002.png"):
        strict[1]


def test_missing_label_column_is_named(nested):
    with pytest.raises(DataError, match=r"labels.csv: missing column\(s\) \['Water'\]"):
        read_label_csv(nested / "labels.csv", ["Water"])


def test_label_outside_01_names_the_row(nested):
    frame = pd.DataFrame({"Filename": ["00000001.png", "00000002.png"], "Defect": [0, 2]})
    spec = resolve_label_spec("binary", None, None)
    with pytest.raises(DataError, match=r"row 3 \(00000002.png\) has a label outside"):
        CsvImageDataset(frame, nested / "bad.csv", nested, spec, EVAL)


def test_multiclass_names_and_indices(nested):
    frame = pd.DataFrame(
        {"Filename": ["00000001.png", "00000002.png", "00000003.png"], "kind": ["crack", "root", "crack"]}
    )
    spec = resolve_label_spec("multiclass", ["kind"], None, frame)
    assert spec.class_names == ("crack", "root")
    ds = CsvImageDataset(frame, nested / "m.csv", nested, spec, EVAL)
    assert ds.targets.tolist() == [0, 1, 0]
    unknown = frame.assign(kind=["crack", "hole", "root"])
    with pytest.raises(DataError, match="row 3 has class 'hole'"):
        CsvImageDataset(unknown, nested / "m.csv", nested, spec, EVAL)


def test_sampling_is_seeded_per_split_and_keeps_order():
    frame = pd.DataFrame({"Filename": [f"{i:08d}.png" for i in range(1000)], "Defect": 0})
    a = sample_rows(frame, 0.1, seed=3, split="train")
    assert len(a) == 100 and a.Filename.is_monotonic_increasing
    assert a.equals(sample_rows(frame, 0.1, seed=3, split="train"))
    assert not a.equals(sample_rows(frame, 0.1, seed=4, split="train"))
    assert not a.equals(sample_rows(frame, 0.1, seed=3, split="val"))
    assert split_ratio({"train": 0.2}, "train") == 0.2 and split_ratio({"train": 0.2}, "test") == 1.0


def test_train_transform_augments_eval_does_not():
    image = torch.randint(0, 255, (3, 48, 64), dtype=torch.uint8)
    augment = AugmentSchema(rotation=30, scale=[0.8, 1.2], hflip=0.5, brightness=0.3, contrast=0.3, saturation=0.3)
    train = build_transform(32, 3, augment)
    torch.manual_seed(0)
    assert not torch.equal(train(image), train(image))
    assert torch.equal(EVAL(image), EVAL(image)) and EVAL(image).dtype == torch.uint8
    resized = torch.nn.functional.interpolate(image[None].float(), size=(32, 32), mode="bilinear", antialias=True)[0]
    assert (EVAL(image).float() - resized).abs().max() <= 1


def test_folder_dataset_lists_images_recursively(nested):
    (nested / "notes.txt").write_text("not an image")
    ds = FolderImageDataset(nested, EVAL)
    assert list(ds.names) == ["train00/00000001.png", "train00/00000002.png", "train01/deeper/00000003.png"]
    (nested / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        FolderImageDataset(nested / "empty", EVAL)
    with pytest.raises(DataError, match=r"missing: no such file or folder"):
        FolderImageDataset(nested / "missing", EVAL)
    with pytest.raises(DataError, match=r"^input=.*missing.mp4: no such file or folder$"):
        find_videos(nested / "missing.mp4")
    with pytest.raises(DataError, match="is neither an image"):
        FolderImageDataset(nested / "notes.txt", EVAL)
    one = FolderImageDataset(nested / "train00" / "00000002.png", EVAL)
    assert list(one.names) == ["00000002.png"] and list(one.paths) == [str(nested / "train00" / "00000002.png")]


def test_data_module_on_synthetic(tiny_data):
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), "data.sampling_ratio={train: 0.5}"])
    data = DataModule(data_settings(cfg.data), seed=1)
    assert len(data.dataset("train")) == 24 and len(data.dataset("test")) == 26
    batch = next(iter(data.loader("val").loader))  # what the workers ship
    assert batch["image"].shape == (8, 3, 64, 64) and batch["image"].dtype == torch.uint8


def test_defective_rows_train_and_validate_on_images_with_a_label(tiny_data):
    codes = ["RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF", "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK"]
    base = [*tiny_overrides(tiny_data), "data.task=multilabel", f"data.label_columns=[{','.join(codes)}]"]
    every = DataModule(data_settings(compose_config(overrides=base).data), seed=0)
    defective = DataModule(data_settings(compose_config(overrides=[*base, "data.rows=defective"]).data), seed=0)
    for split in ("train", "val"):
        kept, all_rows = defective.frame(split), every.frame(split)
        expected = all_rows[all_rows[codes].max(axis=1) == 1].Filename.tolist()
        assert kept.Filename.tolist() == expected and 0 < len(kept) < len(all_rows)
    assert defective.frame("test").equals(every.frame("test"))  # the combination is scored on every image


def test_defective_rows_need_a_multilabel_task(tiny_data):
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), "data.rows=defective"])
    with pytest.raises(ConfigError, match=r"data.rows=defective .* needs data.task=multilabel, not binary"):
        check_data_config(cfg.data)
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), "data.rows=normal"])
    with pytest.raises(ConfigError, match=r"data.rows='normal'; choose one of \['all', 'defective'\]"):
        check_data_config(cfg.data)


def test_folds_split_the_training_csv_stratified_and_the_same_for_every_seed(tiny_data):
    every = pd.read_csv(tiny_data / "SewerML_Train.csv", dtype={"Filename": str})
    vals = []
    for fold in range(3):
        folds = [*tiny_overrides(tiny_data), f"data.fold={fold}", "data.num_folds=3"]
        data = DataModule(data_settings(compose_config(overrides=folds).data), seed=1)
        train, val = data.frame("train"), data.frame("val")
        assert set(train.Filename).isdisjoint(val.Filename) and len(train) + len(val) == len(every)
        share = val.Defect.mean()
        assert abs(share - every.Defect.mean()) < 0.1  # stratified on the class
        assert val.Filename.equals(
            DataModule(data_settings(compose_config(overrides=folds).data), seed=7).frame("val").Filename
        )
        vals += val.Filename.tolist()
    assert sorted(vals) == sorted(every.Filename)  # every training row validates exactly once
    with pytest.raises(ConfigError, match=r"data.fold and data.num_folds go together"):
        check_data_config(compose_config(overrides=[*tiny_overrides(tiny_data), "data.fold=1"]).data)
    with pytest.raises(ConfigError, match=r"data.fold=3 data.num_folds=3: need num_folds >= 2 and 0 <= fold"):
        check_data_config(
            compose_config(overrides=[*tiny_overrides(tiny_data), "data.fold=3", "data.num_folds=3"]).data
        )


def test_prefetching_gives_the_same_batches_and_stops_cleanly(tiny_data):
    import threading

    from hybrid.data.loaders import make_loader

    cfg = compose_config(overrides=tiny_overrides(tiny_data))
    dataset = DataModule(data_settings(cfg.data), seed=0).dataset("test")
    plain = make_loader(dataset, data_settings(cfg.data), train=False, seed=0)
    ahead = make_loader(dataset, data_settings(cfg.data), train=False, seed=0)
    ahead.prefetch = True
    assert not plain.prefetch  # off on the CPU by default
    pairs = list(zip(plain, ahead, strict=True))
    assert len(pairs) == 4
    for a, b in pairs:
        assert torch.equal(a["image"], b["image"]) and a["index"].tolist() == b["index"].tolist()
    for _ in zip(range(1), ahead, strict=False):  # leave after the first batch
        pass
    assert not [t for t in threading.enumerate() if t.name == "hybrid-prefetch"]


def test_prefetching_raises_the_loader_error_in_the_consumer():
    from hybrid.data.prefetch import prefetched

    def broken(batch):
        raise DataError("cannot read image x.png")

    with pytest.raises(DataError, match=r"x\.png"):
        list(prefetched([{"n": 1}], broken, torch.device("cpu")))


def test_per_row_names_and_paths_are_arrays_that_read_back_exactly(tmp_path):
    """Names and paths live in numpy arrays (no Python object per row), and read back as the strings
    they were, non-ASCII included; the index finds names in bulk, the first of a duplicate winning."""
    from hybrid.data.files import FileTable, StringColumn

    names = ["00000001.png", "", "é-€.png", "x" * 300]
    column = StringColumn(names)
    assert list(column) == names and column[-1] == names[-1] and column[1:3] == names[1:3]
    assert isinstance(column.buffer, np.ndarray) and isinstance(column.offsets, np.ndarray)
    table = FileTable.in_folders(["/a", "/b", "/a", "/b"], names)
    assert table.folders == ("/a", "/b") and list(table.paths) == [
        f"/{f}/{n}" for f, n in zip("abab", names, strict=True)
    ]
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        for name in ("same.png", f"{folder}-€.png"):
            (tmp_path / folder / name).write_bytes(b"")
    index_images.cache_clear()
    index = index_images(str(tmp_path))
    found = index.locate(["second-€.png", "same.png", "missing.png", "first-€.png"])
    assert [index.folders[i] if i >= 0 else None for i in found] == [
        str(tmp_path / "second"),
        str(tmp_path / "first"),
        None,
        str(tmp_path / "first"),
    ]
    assert dict(index.items())["same.png"] == str(tmp_path / "first" / "same.png") and len(index) == 3


def test_label_notes_name_codes_without_a_positive_and_a_test_split_that_chose_the_epoch(tiny_data):
    """The tiny multi-label labels lack some of the 17 codes in train or val: each split's absent
    codes named (as the CSV says); a test CSV that is the validation CSV said so; neither said
    where it is not so."""
    from hybrid.data.sewerml import DEFECT_CODES

    codes = f"data.label_columns=[{','.join(DEFECT_CODES)}]"
    base = [*tiny_overrides(tiny_data), "data.task=multilabel", codes]
    data = DataModule(data_settings(compose_config(overrides=[*base, "data.test_csv=SewerML_Val.csv"]).data), seed=0)
    notes = data.label_notes()
    for split, csv in (("train", "SewerML_Train.csv"), ("val", "SewerML_Val.csv")):
        frame = pd.read_csv(tiny_data / csv)
        absent = [code for code in DEFECT_CODES if frame[code].sum() == 0]
        said = [n for n in notes if n.startswith(f"the {split} labels have no positive")]
        assert (len(said) == 1 and f"({', '.join(absent)})" in said[0]) if absent else not said, (split, absent, notes)
    assert any(n.startswith("the test split is SewerML_Val.csv, the validation CSV that chose") for n in notes)
    binary = DataModule(data_settings(compose_config(overrides=tiny_overrides(tiny_data)).data), seed=0)
    assert binary.label_notes() == []
