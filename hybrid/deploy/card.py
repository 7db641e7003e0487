"""Writing the model card (:class:`~hybrid.serve.model_card.ModelCard`, its format and reader) into an
exported ONNX file: the card of a checkpoint, and its entries in the file's ``metadata_props``."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from hybrid.data.batch import channel_stats
from hybrid.errors import CheckpointError
from hybrid.metrics import THRESHOLD
from hybrid.serve.model_card import PREFIX, ModelCard
from hybrid.util.atomic import atomic_write


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_from_checkpoint(record, ckpt_path: str | os.PathLike, **export_facts) -> ModelCard:
    """The card of a model exported from a loaded checkpoint ``record`` (a
    :class:`~hybrid.engine.checkpoint.CheckpointRecord`); ``export_facts`` gives ``precision``,
    ``parameters``, ``flops_per_image``, ``opset`` and ``exported_with``."""
    data = record.config["data"]
    in_channels = int(data["in_channels"])
    return ModelCard(
        task=record.task,
        class_names=list(record.class_names),
        negative_class=record.negative_class,
        img_size=int(data["img_size"]),
        in_channels=in_channels,
        mean=channel_stats(data["mean"], in_channels),
        std=channel_stats(data["std"], in_channels),
        threshold=THRESHOLD if record.threshold is None else record.threshold,
        threshold_tuned=record.threshold is not None,
        config=record.config,
        source_checkpoint=str(Path(ckpt_path).expanduser().resolve()),
        source_sha256=file_sha256(ckpt_path),
        **export_facts,
    )


def write_card(model, card: ModelCard) -> None:
    """Replace any hybrid entries of an ``onnx.ModelProto``'s metadata by ``card``'s."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *card.metadata().items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def stamp_clock_measurement(onnx_path: str | os.PathLike, ckpt_path: str | os.PathLike, share: float) -> None:
    """Record in the card of ``onnx_path`` (exported from ``ckpt_path``, checked by its sha256) how
    often its attention's clock position was within one hour of the truth (``bench/survey_clock.py``);
    the file is replaced atomically."""
    import onnx

    model = onnx.load(str(onnx_path))
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props}, str(onnx_path))
    if card.source_sha256 != file_sha256(ckpt_path):
        raise CheckpointError(f"{onnx_path} was exported from {card.source_checkpoint}, not from {ckpt_path}")
    write_card(model, dataclasses.replace(card, clock_within_1h=round(float(share), 4)))
    atomic_write(Path(onnx_path), lambda tmp: onnx.save(model, str(tmp)))
