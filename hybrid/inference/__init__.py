"""Inference: serve a model file alone (a checkpoint, or an ``.onnx`` exported from one) and
predict what ``input`` names, each kind of input in its own module: the trained test split or a
folder of images (:mod:`~hybrid.inference.image_input`), inspection videos
(:mod:`~hybrid.inference.video_input`). :func:`infer` opens the model once
(:mod:`~hybrid.inference.served_run`) and hands it to the source's function in :data:`SOURCES`."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from hybrid.inference.image_input import predict_folder, predict_test_split
from hybrid.inference.served_run import InferRun, open_run
from hybrid.inference.video_input import predict_videos

# what input= names -> the function that predicts it (InferRun.source says which)
SOURCES: dict[str, Callable[[InferRun], dict]] = {
    "test_split": predict_test_split,
    "images": predict_folder,
    "videos": predict_videos,
}


def infer(cfg: DictConfig, data_overrides: list[str] | None = None) -> dict:
    """Predict with ``ckpt_path`` (a checkpoint, or an ``.onnx`` exported from one): the trained
    test split by default, or ``input`` (a folder of images, one image, a video or a folder of
    them). Images that are missing or cannot be read are named in the log and in ``skipped.csv``.

    ``data_overrides``: the overrides whose ``data`` keys replace the trained data config's (by
    default the command line's; a caller composing ``cfg`` itself passes its own)."""
    run = open_run(cfg, data_overrides)
    return SOURCES[run.source](run)


__all__ = ["SOURCES", "InferRun", "infer"]
