"""``keyframes.png``: each video event's peak frame, with the model's attention over it when the
model has attention maps (the hybrid models; see :mod:`hybrid.models.contract`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from torch.utils.data import Dataset

from hybrid.data.dataset import NO_TARGET
from hybrid.data.loaders import eval_transform, make_loader
from hybrid.engine.runtime import Runtime, autocast
from hybrid.models.contract import supports_attention
from hybrid.tracking.media import overlay
from hybrid.util.atomic import atomic_write

TILE_SIDE = 240  # pixels per keyframe in the sheet
TILES_PER_ROW = 4
CAPTION_HEIGHT = 28


class _Frames(Dataset):
    """Frames held in memory (a handful of keyframes) as model inputs."""

    def __init__(self, frames: Sequence[np.ndarray], transform):
        self.frames, self.transform = frames, transform
        self.names = [str(i) for i in range(len(frames))]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict:
        image = torch.from_numpy(np.ascontiguousarray(self.frames[i]))
        image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        return {"image": self.transform(image), "target": NO_TARGET, "index": i}


@torch.no_grad()
def attention_grids(model: nn.Module, frames: Sequence[np.ndarray], data_cfg, runtime: Runtime) -> list | None:
    """The mean attention (last layer, over heads and queries) as a square patch grid per frame, the
    frames prepared as the model's inputs are; ``None`` for a model without attention maps."""
    if not frames or not supports_attention(model):
        return None
    loader = make_loader(
        _Frames(frames, eval_transform(data_cfg)), data_cfg, train=False, seed=0, device=runtime.device
    )
    core = getattr(model, "module", model)
    core.eval()
    grids = []
    for start in range(0, len(frames), int(data_cfg.batch_size)):
        batch = loader.batch_of(range(start, min(start + int(data_cfg.batch_size), len(frames))))
        with autocast(runtime.device, runtime.precision):
            _, attention = core.forward_with_attention(batch["image"])
        weights = attention.float().mean(dim=(1, 2)).cpu().numpy()
        side = round(weights.shape[1] ** 0.5)
        grids += [w.reshape(side, side) for w in weights]
    return grids


def write_keyframes(path: Path, frames: Sequence[np.ndarray], captions: Sequence[str], grids=None) -> Path | None:
    """A contact sheet of ``frames`` (attention ``grids`` drawn over them when given), captioned."""
    if not frames:
        return None
    rows = math.ceil(len(frames) / TILES_PER_ROW)
    columns = min(len(frames), TILES_PER_ROW)
    sheet = Image.new("RGB", (columns * TILE_SIDE, rows * (TILE_SIDE + CAPTION_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (pixels, caption) in enumerate(zip(frames, captions, strict=True)):
        tile = Image.fromarray(pixels).convert("RGB").resize((TILE_SIDE, TILE_SIDE), Image.BILINEAR)
        if grids is not None:
            tile = overlay(tile, grids[i])
        x, y = (i % TILES_PER_ROW) * TILE_SIDE, (i // TILES_PER_ROW) * (TILE_SIDE + CAPTION_HEIGHT)
        sheet.paste(tile, (x, y))
        draw.text((x + 4, y + TILE_SIDE + 2), caption, fill="black")
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return path
