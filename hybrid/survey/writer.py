"""A survey folder's files: ``observations.csv`` / ``.json``, ``photos/``, ``report.html``, each
replaced whole and atomically (a survey rewritten as the robot drives is never half a file)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybrid.survey.observations import OBSERVATION_COLUMNS, Observation
from hybrid.survey.page import SurveyPage, render
from hybrid.survey.schema import OBSERVATIONS_CSV, OBSERVATIONS_JSON, PHOTOS_DIR, REPORT_FILE
from hybrid.util.atomic import atomic_write, atomic_write_bytes, atomic_write_text

JPEG_QUALITY = 85
PAGE_PHOTO_WIDTH = 480  # the report embeds photos this wide (photos/ keeps them full size)


def photo_name(obs: Observation, taken: set[str]) -> str:
    """A photo's file name, by distance and code (``0003.65m_BAF.jpg``), unique in ``taken``."""
    where = "unknown" if math.isnan(obs.distance_m) else f"{obs.distance_m:07.2f}m"
    stem = f"{where}_{obs.code or obs.label}{'_' + obs.continuous if obs.continuous else ''}"
    name, count = f"{stem}.jpg", 1
    while name in taken:
        count += 1
        name = f"{stem}_{count}.jpg"
    taken.add(name)
    return name


def jpeg(pixels: np.ndarray, width: int | None = None) -> bytes:
    """``pixels`` (RGB or grey) as JPEG bytes, scaled down to ``width`` when wider."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes back to RGB pixels."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def save_photo(out: Path, name: str, data: bytes) -> None:
    """``photos/<name>`` in ``out``."""
    (out / PHOTOS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / PHOTOS_DIR / name, data)


def write_observations(out: Path, rows: Sequence[Observation]) -> None:
    """``observations.csv`` and ``observations.json`` in ``out``."""
    records = [obs.row() for obs in rows]

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=OBSERVATION_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)

    atomic_write(out / OBSERVATIONS_CSV, write_csv)
    atomic_write_text(out / OBSERVATIONS_JSON, json.dumps({"observations": records}, indent=1) + "\n")


def write_report(out: Path, page: SurveyPage) -> Path:
    """``report.html`` in ``out``."""
    return atomic_write_text(out / REPORT_FILE, render(page))


def read_observations(out: Path) -> list[dict]:
    """The rows of an earlier ``observations.json`` in ``out`` (none when there is none)."""
    path = out / OBSERVATIONS_JSON
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("observations", []))
