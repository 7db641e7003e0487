"""Facts about the Sewer-ML benchmark that the data, metrics and generator share."""

from __future__ import annotations

# The 17 defect codes of the official multi-label task, in the benchmark's column order.
DEFECT_CODES: tuple[str, ...] = (
    "RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF",
    "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK",
)  # fmt: skip

# Class-importance weights of F2-CIW (Haurum & Moeslund, CVPR 2021) as the official evaluation
# script has them; the paper's table lists them divided by RB's and rounded to 4 decimals (OB
# 0.5518, ...), which moves F2-CIW by up to ~5e-6. Only their ratios matter.
CIW_WEIGHTS: dict[str, float] = {
    "RB": 5.55, "OB": 3.0625, "PF": 1.6075, "DE": 0.9, "FS": 3.5625, "IS": 1.025,
    "RO": 1.975, "IN": 1.7375, "AF": 0.45, "BE": 1.2625, "FO": 1.375, "GR": 0.5,
    "PH": 2.3125, "PB": 2.3125, "OS": 5.0, "OP": 2.125, "OK": 2.44,
}  # fmt: skip

# Header of the official label CSVs.
CSV_HEADER: tuple[str, ...] = ("Filename", "WaterLevel", "VA", *DEFECT_CODES, "ND", "Defect")

BINARY_CLASSES: tuple[str, ...] = ("Normal", "Defect")
