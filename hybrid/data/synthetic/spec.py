"""What a synthetic Sewer-ML look-alike is made of: its settings (:class:`SyntheticSpec`, the ``data.synthetic`` keys), the file names it writes, and how often each defect code, water level and material occurs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hybrid.data.sewerml import DEFECT_CODES
from hybrid.util.cli import option

SPLIT_FILES = {"train": "SewerML_Train.csv", "val": "SewerML_Val.csv", "test": "SewerML_Test.csv"}


META_FILE = "synthetic.json"


# Relative frequency of each code among defect labels, shaped like Sewer-ML's training split:
# deposits, surface damage, displaced joints and connections common, transition profiles rare.
CODE_FREQUENCY = {
    "RB": 4.2, "OB": 11.3, "PF": 2.1, "DE": 3.7, "FS": 9.5, "IS": 1.5, "RO": 3.8, "IN": 1.3,
    "AF": 14.0, "BE": 6.5, "FO": 1.6, "GR": 2.5, "PH": 2.0, "PB": 1.2, "OS": 1.8, "OP": 0.7,
    "OK": 7.4,
}  # fmt: skip


# Codes that tend to appear together in real inspections.
CO_OCCURRING = {
    "FS": ("RO", "IN", "IS"), "RO": ("FS",), "IN": ("FS", "BE"), "IS": ("FS",),
    "AF": ("BE", "OB", "FO"), "BE": ("AF",), "OB": ("AF", "RB"), "RB": ("DE", "OB"),
    "DE": ("RB",), "FO": ("AF",), "PH": ("OB",),
}  # fmt: skip


EXTRA_CODES_PROBABILITY = (0.66, 0.24, 0.08, 0.02)  # 1, 2, 3 or 4 codes on a defective image


WATER_LEVELS = (0, 5, 10, 15, 20, 30, 40, 50)


WATER_LEVEL_WEIGHTS = (0.30, 0.22, 0.17, 0.11, 0.09, 0.06, 0.03, 0.02)


MATERIALS = {
    "concrete": (0.62, 0.60, 0.56),
    "clay": (0.66, 0.45, 0.31),
    "pvc": (0.74, 0.73, 0.69),
    "brick": (0.56, 0.36, 0.28),
}


@dataclass
class SyntheticSpec:
    """What a synthetic dataset is made of; stored next to it to detect stale folders."""

    num_train: int = option(2000, "images in the training split (SewerML_Train.csv)")
    num_val: int = option(400, "images in the validation split (SewerML_Val.csv)")
    num_test: int = option(400, "images in the test split (SewerML_Test.csv)")
    width: int = option(320, "image width in pixels")
    height: int = option(240, "image height in pixels")
    seed: int = option(0, "the dataset depends only on this and the other settings")
    defect_rate: float = option(0.47, "share of images with at least one defect code")
    min_contrast: float = option(0.6, "weakest a defect's contrast against the pipe may be (0-1; 1: all bold)")
    workers: int = option(2, "processes rendering images (changes the speed only)")

    def identity(self) -> dict:
        """The fields that change the data (``workers`` only changes the speed)."""
        fields = asdict(self)
        fields.pop("workers")
        return fields


def sample_labels(rng: np.random.Generator, defect_rate: float) -> tuple[list[str], int]:
    """Codes present on one image and its water level (percent)."""
    water = int(rng.choice(WATER_LEVELS, p=WATER_LEVEL_WEIGHTS))
    if rng.random() >= defect_rate:
        return [], water
    codes = list(CODE_FREQUENCY)
    base = np.array([CODE_FREQUENCY[c] for c in codes])
    count = 1 + int(rng.choice(len(EXTRA_CODES_PROBABILITY), p=EXTRA_CODES_PROBABILITY))
    chosen = [codes[rng.choice(len(codes), p=base / base.sum())]]
    while len(chosen) < count:
        partners = [p for c in chosen for p in CO_OCCURRING.get(c, ()) if p not in chosen]
        if partners and rng.random() < 0.5:
            chosen.append(partners[rng.integers(len(partners))])
            continue
        weights = np.array([0.0 if c in chosen else CODE_FREQUENCY[c] for c in codes])
        chosen.append(codes[rng.choice(len(codes), p=weights / weights.sum())])
    return sorted(chosen, key=DEFECT_CODES.index), water
