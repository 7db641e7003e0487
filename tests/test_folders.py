"""Image-folder datasets (data=folder): class sub-folders per split, or one folder split by ratios."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from hybrid.data.labels import resolve_label_spec
from hybrid.data.loaders import DataModule
from hybrid.data.schema import data_settings
from hybrid.data.synthetic.pipe_videos import VideoSpec
from hybrid.data.synthetic.pipe_videos import generate as generate_videos
from hybrid.errors import ConfigError, DataError
from hybrid.jobs.schema import check_train_config
from hybrid.metrics import single_label_metrics
from tests.conftest import compose_config, run_script


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
    return DataModule(data_settings(cfg.data), int(cfg.seed))


def test_split_folders_give_classes_and_ready_batches(class_folders):
    data = folder_data(class_folders[0])
    assert list(data.spec.class_names) == ["Defect", "Normal"]
    assert [len(data.frame(s)) for s in ("train", "val", "test")] == [48, 24, 26]
    assert data.frame("test").Filename.str.startswith("test/").all()
    batch = next(iter(data.loader("test")))
    assert batch["image"].shape == (16, 3, 64, 64) and batch["image"].dtype == torch.float32
    normal = data.frame("test").label.eq("Normal").to_numpy()
    assert (data.dataset("test").targets == normal.astype(int)).all()  # Defect 0, Normal 1: sorted names
    assert data.spec.negative_class == "Normal" and data.spec.positive_index == 0  # by name, not by place


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


def renamed_classes(source, target, names: dict[str, str]):
    """A copy of a class-folder tree with its class folders renamed (``Defect`` -> ``names["Defect"]``)."""
    for image in source.rglob("*.png"):
        split, label = image.relative_to(source).parts[:2]
        folder = target / split / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
    return target


@pytest.mark.parametrize(
    ("names", "declared", "expected"),
    [
        (["defect", "normal"], None, "normal"),
        (["crack", "OK"], None, "OK"),
        (["Background", "root", "crack"], None, "Background"),
        (["cats", "dogs"], "dogs", "dogs"),
        (["0", "1", "2"], None, None),  # digits: no negative class, no Normal/Defect figures
    ],
)
def test_the_negative_class_is_named_never_the_first_by_the_alphabet(names, declared, expected):
    spec = resolve_label_spec("multiclass", ["label"], names, negative_class=declared)
    assert spec.negative_class == expected
    assert [name for name, _ in spec.event_classes] == [n for n in names if n != expected]


def test_two_classes_without_a_negative_one_stop_with_the_key_to_set():
    """Two class folders: one must be the negative class. Elsewhere (a CSV's two defect types) a
    task without one has none: argmax, and no Normal/Defect figures."""
    with pytest.raises(ConfigError, match=r"^classes \['cats', 'dogs'\]: neither .* set data.negative_class=<one of"):
        resolve_label_spec("multiclass", ["label"], ["cats", "dogs"], negative_required_of_two=True)
    assert resolve_label_spec("multiclass", ["kind"], ["crack", "root"]).negative_class is None
    with pytest.raises(ConfigError, match=r"data.negative_class='cow' is not one of the classes"):
        resolve_label_spec("multiclass", ["label"], ["cats", "dogs"], negative_class="cow")
    with pytest.raises(ConfigError, match=r"could each be the negative class"):
        resolve_label_spec("multiclass", ["label"], ["normal", "ok", "crack"])
    with pytest.raises(ConfigError, match=r"applies to single-label tasks"):
        resolve_label_spec("multilabel", ["RB", "OB"], None, negative_class="RB")


def test_binary_figures_follow_the_negative_class_wherever_it_sorts():
    """Classes ['defect', 'normal']: the threshold decides on 'defect' (index 0), and F1-Defect is
    that class's F1, as scikit-learn computes it."""
    spec = resolve_label_spec("multiclass", ["label"], ["defect", "normal"])
    probs = np.array([[0.7, 0.3], [0.45, 0.55], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    targets = np.array([0, 0, 1, 1, 1])
    metrics = single_label_metrics(probs, targets, spec, threshold=0.4)
    predicted_defect = probs[:, 0] >= 0.4
    assert metrics["f1_defect"] == pytest.approx(f1_score(targets == 0, predicted_defect))
    assert metrics["f1_normal"] == pytest.approx(f1_score(targets == 1, ~predicted_defect))
    assert metrics["auroc"] == pytest.approx(roc_auc_score(targets == 0, probs[:, 0]))


@pytest.mark.slow
def test_a_defect_normal_folder_dataset_trains_defect_as_the_positive_class(class_folders, tmp_path):
    """As a user with private data would: lower-case defect/ and normal/ folders, train with a tuned
    threshold (a two-class folder dataset has one to tune), then a video."""
    root = renamed_classes(class_folders[0], tmp_path / "data", {"Defect": "defect", "Normal": "normal"})
    run = tmp_path / "run"
    result = run_script(
        "train.py", "data=folder", f"data.root={root}", "data.num_workers=0", "model.img_size=64",
        "model.patch_size=16", "trainer.max_epochs=2", "trainer.progress_bar=false", "logger=none",
        "trainer.tune_threshold=true", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tuned threshold" in result.stdout
    tuned = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["threshold"]
    assert tuned is not None and 0 < tuned < 1
    assert "classes ['defect', 'normal'] (negative class: normal)" in result.stdout
    predictions = pd.read_csv(run / "predictions.csv")
    truth = predictions.Filename.str.split("/").str[1]
    metrics = json.loads((run / "metrics.json").read_text())  # predictions.csv decides at the tuned threshold
    assert metrics["test/tuned/threshold"] == pytest.approx(tuned)
    defect, normal = (f1_score(truth == c, predictions.prediction == c) for c in ("defect", "normal"))
    assert metrics["test/tuned/f1_defect"] == pytest.approx(defect)
    assert metrics["test/tuned/f1_normal"] == pytest.approx(normal)
    assert torch.load(run / "checkpoints" / "best.pt", weights_only=True)["negative_class"] == "normal"

    videos = generate_videos(tmp_path / "videos", VideoSpec(videos=1, duration_s=8.0, width=160, height=120, fps=4.0))
    result = run_script(
        "infer.py", f"ckpt_path={run / 'checkpoints' / 'best.pt'}", f"input={videos / 'pipe_001.mp4'}",
        "video.threshold=0.001", "video.min_duration_s=0", f"hydra.run.dir={tmp_path / 'video'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "events of defect at score" in result.stdout
    events = pd.read_csv(tmp_path / "video" / "events.csv")
    assert len(events) and set(events.label) == {"defect"}  # threshold ~0: the whole video is one defect event


def test_cats_and_dogs_stop_before_work_with_the_one_line_request(class_folders, tmp_path):
    root = renamed_classes(class_folders[0], tmp_path / "data", {"Defect": "cats", "Normal": "dogs"})
    run = tmp_path / "run"
    result = run_script("train.py", "data=folder", f"data.root={root}", "logger=none", f"hydra.run.dir={run}")
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "classes ['cats', 'dogs']" in errors[0] and "data.negative_class=" in errors[0]
    assert not run.exists()  # refused before work: no run dir left behind


def test_splits_sharing_file_names_read_their_own_files_without_a_warning(class_folders, tmp_path, caplog):
    root = renamed_classes(class_folders[0], tmp_path / "data", {"Defect": "defect", "Normal": "normal"})
    image = next((root / "train" / "normal").iterdir())
    shutil.copy(image, root / "test" / "normal" / image.name)  # the same name in two splits
    data = folder_data(root)
    with caplog.at_level("WARNING"):
        train, test = data.dataset("train"), data.dataset("test")
    assert "occur more than once" not in caplog.text
    shared = f"test/normal/{image.name}"
    assert test.paths[test.names.index(shared)] == str(root / shared)
    assert train.paths[train.names.index(f"train/normal/{image.name}")] == str(image)
