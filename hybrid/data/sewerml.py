"""Facts about the Sewer-ML benchmark that the data, metrics and generator share."""

from __future__ import annotations

# The 17 defect codes of the official multi-label task, in the benchmark's column order.
DEFECT_CODES: tuple[str, ...] = (
    "RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF",
    "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK",
)  # fmt: skip

# Class-importance weights of F2-CIW (Haurum & Moeslund, CVPR 2021).
CIW_WEIGHTS: dict[str, float] = {
    "RB": 1.0000, "OB": 0.5518, "PF": 0.2896, "DE": 0.1622, "FS": 0.6419, "IS": 0.1847,
    "RO": 0.3559, "IN": 0.3131, "AF": 0.0811, "BE": 0.2275, "FO": 0.2477, "GR": 0.0901,
    "PH": 0.4167, "PB": 0.4167, "OS": 0.9009, "OP": 0.3829, "OK": 0.4396,
}  # fmt: skip

# Header of the official label CSVs.
CSV_HEADER: tuple[str, ...] = ("Filename", "WaterLevel", "VA", *DEFECT_CODES, "ND", "Defect")

BINARY_CLASSES: tuple[str, ...] = ("Normal", "Defect")
