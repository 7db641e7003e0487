"""Writing a synthetic dataset: every image drawn from its index and the seed alone (so any process can draw any image), in Sewer-ML's layout and label CSVs, with a ``synthetic.json`` that says how it was made; a folder made with other settings is refused, never overwritten."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hybrid.data.sewerml import CSV_HEADER
from hybrid.data.synthetic.painters import render_image
from hybrid.data.synthetic.spec import META_FILE, SPLIT_FILES, SyntheticSpec, sample_labels
from hybrid.errors import DataError
from hybrid.util.atomic import atomic_write, atomic_write_text
from hybrid.util.progress import progress as counted


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def _split_ranges(spec: SyntheticSpec) -> dict[str, range]:
    first_val = spec.num_train
    first_test = first_val + spec.num_val
    return {
        "train": range(0, first_val),
        "val": range(first_val, first_test),
        "test": range(first_test, first_test + spec.num_test),
    }


def _file_name(index: int) -> str:
    return f"{index + 1:08d}.png"


def _write_one(args: tuple[SyntheticSpec, int, str]) -> dict:
    spec, index, folder = args
    rng = _image_rng(spec.seed, index)
    codes, water = sample_labels(rng, spec.defect_rate)
    path = Path(folder) / _file_name(index)
    if not path.is_file():
        pixels = render_image(rng, codes, water, spec)
        # A killed run never leaves a half-written PNG under the real name.
        atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp, optimize=False, compress_level=1))
    row = {col: 0 for col in CSV_HEADER}
    row.update(Filename=path.name, WaterLevel=water, Defect=int(bool(codes)), ND=int(not codes))
    row.update({code: 1 for code in codes})
    return row


def generate(root: str | os.PathLike, spec: SyntheticSpec, *, progress: bool = True) -> Path:
    """Write (or finish writing) a synthetic Sewer-ML dataset under ``root``.

    Images go to ``root/<split>/``; the label CSVs and ``synthetic.json`` are written last, so a
    folder with ``synthetic.json`` is complete.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    jobs = []
    for split, indices in _split_ranges(spec).items():
        (root / split).mkdir(exist_ok=True)
        jobs += [(spec, i, str(root / split)) for i in indices]
    desc = f"generating synthetic Sewer-ML in {root}"
    if spec.workers > 1:
        with ProcessPoolExecutor(spec.workers) as pool:
            made = pool.map(_write_one, jobs, chunksize=16)
            rows = list(counted(made, desc, total=len(jobs), enabled=progress, unit="img"))
    else:
        rows = [_write_one(job) for job in counted(jobs, desc, enabled=progress, unit="img")]
    start = 0
    for split, indices in _split_ranges(spec).items():
        frame = pd.DataFrame(rows[start : start + len(indices)], columns=list(CSV_HEADER))
        frame.to_csv(root / SPLIT_FILES[split], index=False)
        start += len(indices)
    atomic_write_text(root / META_FILE, json.dumps(spec.identity(), indent=2))
    return root


def ensure_synthetic_dataset(root: str | os.PathLike, spec: SyntheticSpec, *, progress: bool = True) -> Path:
    """Generate the dataset on first use; reuse it when it matches ``spec``.

    A folder made with other settings is never overwritten: the error says what differs.
    """
    root = Path(root)
    meta = root / META_FILE
    if meta.is_file():
        found = json.loads(meta.read_text())
        if found != spec.identity():
            diff = {k: (found.get(k), v) for k, v in spec.identity().items() if found.get(k) != v}
            raise DataError(
                f"data.root={root} holds a synthetic dataset made with other settings "
                f"(stored, requested: {diff}); delete that folder or set another data.root"
            )
        return root
    return generate(root, spec, progress=progress)
