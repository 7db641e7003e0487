"""Score timed defect predictions with the CCTV-Pipe temporal metric (VideoPipe, ICPR 2022).

``python -m hybrid.evaluate_video predictions=events.json labels=truth.json [output=O.json]``

Predictions: ``{"results": {video: [{"label", "moment", "score"}]}}`` (what ``infer.py
input=VIDEO`` writes, or any tool's); truth: ``{"database": {video: {"annotations": [{"label",
"moment"}]}}}``. Output: ``map@5``, ``map@10``, ``map@15``, their mean ``map`` and ``ap@<d>/<label>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from hybrid.engine.outputs import format_figures, write_json
from hybrid.errors import DataError
from hybrid.events import DISTANCE_THRESHOLDS, temporal_map
from hybrid.util.entry import launch, run_entry

log = logging.getLogger(__name__)


def _read_json(path: Path, role: str, top: str) -> dict:
    if not path.is_file():
        raise DataError(f"{role}={path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{role}={path}: not JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get(top), dict):
        raise DataError(f'{role}={path}: expected {{"{top}": {{video: ...}}}}')
    return data[top]


def _entry(path: Path, video: str, item, keys: tuple[str, ...]) -> tuple:
    try:
        return tuple(item[k] if k == "label" else float(item[k]) for k in keys)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: video {video}: an entry lacks a number for one of {list(keys)}: {item}") from err


def read_truth(path: Path) -> list[tuple[str, str, float]]:
    """``(video, label, moment)`` of every annotation in a CCTV-Pipe ground-truth file."""
    database = _read_json(path, "labels", "database")
    rows = []
    for video, entry in database.items():
        for item in (entry or {}).get("annotations", []):
            rows.append((video, *_entry(path, video, item, ("label", "moment"))))
    if not rows:
        raise DataError(f"labels={path}: no annotations")
    return rows


def read_predictions(path: Path) -> list[tuple[str, str, float, float]]:
    """``(video, label, moment, score)`` of every prediction in a CCTV-Pipe results file."""
    results = _read_json(path, "predictions", "results")
    return [
        (video, *_entry(path, video, item, ("label", "moment", "score")))
        for video, items in results.items()
        for item in items or []
    ]


def evaluate_video_files(cfg: DictConfig) -> dict:
    """Read both files, score them, log the figures and write ``output`` if given."""
    predictions_path, labels_path = Path(str(cfg.predictions)), Path(str(cfg.labels))
    truth, predictions = read_truth(labels_path), read_predictions(predictions_path)
    unknown = sorted({label for _, label, _, _ in predictions} - {label for _, label, _ in truth})
    if unknown:
        log.warning("labels the truth lacks are not scored: %s", ", ".join(unknown))
    metrics = temporal_map(truth, predictions, tuple(cfg.distances) or DISTANCE_THRESHOLDS)
    log.info("%d predictions, %d annotations: %s", len(predictions), len(truth), format_figures(
        {k: v for k, v in metrics.items() if k.startswith("map")}
    ))  # fmt: skip
    if cfg.output:
        write_json(Path(str(cfg.output)), metrics)
        log.info("metrics written to %s", cfg.output)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate_video")
def main(cfg: DictConfig) -> None:
    run_entry(evaluate_video_files, cfg)


if __name__ == "__main__":
    launch(main)
