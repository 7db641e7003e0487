"""Score timed defect predictions with the CCTV-Pipe temporal metric (VideoPipe, ICPR 2022).

``python -m hybrid.jobs.evaluate_video predictions=events.json labels=truth.json [output=O.json]``

Predictions: ``{"results": {video: [{"label", "moment", "score"}]}}`` (what ``infer.py
input=VIDEO`` writes, or any tool's); truth: ``{"database": {video: {"annotations": [{"label",
"moment"}]}}}``. Output: ``map@5``, ``map@10``, ``map@15``, their mean ``map`` and ``ap@<d>/<label>``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig

from hybrid.engine.outputs import format_figures, write_json
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import EvaluateVideoSchema
from hybrid.util.typed_config import check_types
from hybrid.video.cctv_pipe import DISTANCE_THRESHOLDS, temporal_map
from hybrid.video.event_files import read_predictions, read_truth

log = logging.getLogger(__name__)


def evaluate_video_files(cfg: DictConfig) -> dict:
    """Read both files, score them, log the figures and write ``output`` if given."""
    check_types(cfg, EvaluateVideoSchema, "", resolve=False)  # a typo'd or mistyped key stops here
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


main = HydraJob("evaluate_video", evaluate_video_files)

if __name__ == "__main__":
    sys.exit(main())
