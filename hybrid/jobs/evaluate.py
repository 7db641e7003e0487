"""Score any predictions CSV against a label CSV with the official metrics.

``python -m hybrid.jobs.evaluate predictions=P labels=L [output=O.json] [threshold=0.5]``

Predictions: ``Filename`` plus one score column per Sewer-ML code (multi-label) or a ``Defect``
score (binary), in any row order; rows are matched to the labels by ``Filename``. Predictions from
other tools are scored exactly like hybrid's own.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from hybrid.data.dataset import check_file_names
from hybrid.data.labels import check_columns, resolve_label_spec
from hybrid.data.sewerml import DEFECT_CODES
from hybrid.engine.outputs import format_class_table, format_figures, write_json
from hybrid.errors import DataError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import EvaluateSchema
from hybrid.metrics import headline, multilabel_metrics, sewerml_headline, single_label_metrics
from hybrid.util.typed_config import check_types

log = logging.getLogger(__name__)


def _read(path: Path, role: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{role}={path}: no such file")
    frame = pd.read_csv(path, dtype={"Filename": str}, keep_default_na=False)
    check_columns(frame, (), path)
    check_file_names(frame["Filename"], path)
    return frame


def score(predictions: pd.DataFrame, labels: pd.DataFrame, threshold: float, where: str = "predictions") -> dict:
    """Metrics of ``predictions`` against ``labels``; multi-label when the predictions carry the
    Sewer-ML code columns, binary (``Defect``) otherwise."""
    codes = [c for c in DEFECT_CODES if c in predictions.columns]
    columns = codes or ["Defect"]
    check_columns(predictions, columns, Path(where))
    check_columns(labels, columns, Path("labels"))
    merged = labels[["Filename", *columns]].merge(
        predictions[["Filename", *columns]], on="Filename", how="left", suffixes=("", "_score")
    )
    unscored = merged[merged[f"{columns[0]}_score"].isna()]
    if len(unscored):
        raise DataError(f"{where}: no prediction for {len(unscored)} labelled images, e.g. {unscored.Filename.iloc[0]}")
    scores = merged[[f"{c}_score" for c in columns]].to_numpy(np.float64)
    truth = merged[columns].to_numpy()
    if not np.isin(truth, (0, 1)).all():
        raise DataError("labels: values outside {0, 1} in " + str(columns))
    if codes:
        return multilabel_metrics(scores, truth, codes, threshold)
    probs = np.column_stack([1 - scores[:, 0], scores[:, 0]])
    return single_label_metrics(
        probs, truth[:, 0].astype(np.int64), resolve_label_spec("binary", None, None), threshold
    )


def evaluate_files(cfg: DictConfig) -> dict:
    """Read both CSVs, score, log the per-class table and write ``output`` if given."""
    check_types(cfg, EvaluateSchema, "", resolve=False)  # a typo'd or mistyped key stops here
    predictions_path, labels_path = Path(str(cfg.predictions)), Path(str(cfg.labels))
    metrics = score(
        _read(predictions_path, "predictions"),
        _read(labels_path, "labels"),
        float(cfg.threshold),
        str(predictions_path),
    )
    names = [k.removeprefix("f1/") for k in metrics if k.startswith("f1/")]
    log.info("per class:\n%s", format_class_table(metrics, names))
    log.info("%s", format_figures(headline(metrics)))
    official = sewerml_headline(metrics)
    if official:
        log.info("official Sewer-ML figures (sewerml/*): %s", format_figures(official))
    if cfg.output:
        write_json(Path(str(cfg.output)), metrics)
        log.info("metrics written to %s", cfg.output)
    return metrics


main = HydraJob("evaluate", evaluate_files)

if __name__ == "__main__":
    sys.exit(main())
