"""What ``hybrid train`` costs before it trains: time from the command to its first batch, and the
memory of the training process and its loader workers at that moment (used by ``bench/scale.py``).

    python bench/first_step.py OUT.json [train overrides ...]

Python, torch and hybrid are imported first and not counted (the issue's "excluding imports"); the
clock starts where ``hybrid train`` would parse its command line. The training loop is replaced by
one that takes the first batch, records, and ends the run: nothing is trained. Memory is read from
``/proc`` (Linux): ``VmRSS`` of the training process, and PSS (each shared page split between the
processes that map it) of it and each loader worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def proc_kib(path: str, key: str) -> int:
    """A ``key:  N kB`` line of a ``/proc`` file, in KiB (0 when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (its loader workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def memory() -> dict:
    """RSS and PSS (MiB) of this process and its children, now."""
    me = os.getpid()
    workers = children(me)
    return {
        "main_rss_mib": proc_kib("/proc/self/status", "VmRSS") / 1024,
        "main_peak_rss_mib": proc_kib("/proc/self/status", "VmHWM") / 1024,
        "main_pss_mib": proc_kib(f"/proc/{me}/smaps_rollup", "Pss") / 1024,
        "workers": len(workers),
        "workers_pss_mib": [proc_kib(f"/proc/{pid}/smaps_rollup", "Pss") / 1024 for pid in workers],
        "workers_rss_mib": [proc_kib(f"/proc/{pid}/status", "VmRSS") / 1024 for pid in workers],
    }


class FirstBatch(Exception):
    """Raised by the stand-in training loop once the first batch is in."""


def main(argv: list[str]) -> None:
    out, overrides = Path(argv[0]), argv[1:]
    import torch  # noqa: F401  (imports are not counted)

    import hybrid.data.dataset as dataset
    import hybrid.data.loaders as loaders
    import hybrid.engine.trainer as trainer
    import hybrid.jobs.train

    started = time.perf_counter()
    spent = {"index_s": 0.0, "csv_s": 0.0}

    def timed(function, key):
        def run(*args, **kwargs):
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - begun

        return run

    dataset.index_images = timed(dataset.index_images, "index_s")  # finding the images by name
    loaders.read_label_csv = timed(loaders.read_label_csv, "csv_s")  # reading and checking the CSVs

    def first_batch_only(model, loader, *args, **kwargs):
        next(iter(loader))
        record = {"command_to_first_batch_s": time.perf_counter() - started, **spent, **memory()}
        out.write_text(json.dumps(record, indent=2))
        raise FirstBatch

    trainer.train_one_epoch = first_batch_only
    with contextlib.suppress(FirstBatch):  # the stand-in loop's way of ending the run
        hybrid.jobs.train.main(overrides)
    if not out.is_file():
        raise SystemExit(f"the training run ended before its first batch: {' '.join(overrides)}")


if __name__ == "__main__":
    main(sys.argv[1:])
