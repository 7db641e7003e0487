"""``hybrid <job>``: one command for every job of hybrid (the console script of the package).

Every job is a module of :mod:`hybrid.jobs` with the same entry, ``main(argv, prog) -> exit code``;
it is imported only when it runs, so ``hybrid serve`` needs nothing but the serving install (no
torch, no Hydra). Every job but ``serve`` and ``survey`` is a Hydra app that takes the same
``key=value`` overrides as ``train.py`` (``hybrid <job> --help`` shows its config); ``train.py``,
``infer.py`` and ``python -m hybrid.jobs.<job>`` run the same ``main``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

from hybrid.errors import USAGE_ERROR

# What the training install has and the serving install (requirements-serve.txt) lacks.
TRAINING_STACK = ("torch", "hydra")


@dataclass(frozen=True)
class Job:
    """One job: its module (``hybrid.jobs.<name>``, whose ``main(argv, prog)`` runs it) and its line
    in ``hybrid --help``."""

    module: str
    summary: str
    serving: bool = False  # runs in the serving install (no torch, no Hydra)

    def run(self, name: str, argv: list[str]) -> int:
        if not self.serving and not training_install():
            print(f"hybrid {name} needs {NEEDS_TRAINING}", file=sys.stderr)
            return USAGE_ERROR
        return int(importlib.import_module(self.module).main(argv, prog=f"hybrid {name}") or 0)


JOBS = {
    "train": Job("hybrid.jobs.train", "train a model (train.py): hybrid train experiment=quickstart"),
    "infer": Job("hybrid.jobs.infer", "predict a test split, images or videos (infer.py): ckpt_path=..."),
    "export": Job("hybrid.jobs.export", "export a checkpoint to .onnx (fp32, fp16, int8) with its model card"),
    "benchmark": Job("hybrid.jobs.benchmark", "what model files cost here: latency, images/s, memory"),
    "evaluate": Job("hybrid.jobs.evaluate", "score a predictions.csv (the official Sewer-ML metrics)"),
    "evaluate-video": Job("hybrid.jobs.evaluate_video", "score events.json with the CCTV-Pipe temporal metric"),
    "report": Job("hybrid.jobs.report", "a sweep's comparison report (accuracy against cost)"),
    "prepare": Job("hybrid.jobs.prepare", "prepare a dataset's cache (resized uint8 images)"),
    "prune": Job("hybrid.jobs.prune", "structured pruning of a checkpoint, then fine-tuning"),
    "synthetic": Job("hybrid.jobs.synthetic", "write a synthetic Sewer-ML look-alike dataset: root=DIR"),
    "synthetic-video": Job("hybrid.jobs.synthetic_video", "write synthetic inspection videos and their truth: out=DIR"),
    "serve": Job("hybrid.jobs.serve", "predict with an exported .onnx, without the training stack", serving=True),
    "survey": Job("hybrid.jobs.survey", "a draft inspection survey (metres, EN 13508-2 / PACP codes) from a video", serving=True),
}  # fmt: skip
NEEDS_TRAINING = (
    "the training install (torch, Hydra), which this environment lacks (the serving install "
    "runs hybrid serve and hybrid survey); install it with make quickstart, or pip install -e . in a checkout"
)


def training_install() -> bool:
    """Whether the training stack can be imported here (not only the serving install)."""
    try:
        return all(importlib.util.find_spec(module) is not None for module in TRAINING_STACK)
    except ImportError:  # an import hook that refuses it
        return False


def usage() -> str:
    """What ``hybrid --help`` prints: each job with its line; in the serving install, the jobs it
    cannot run are listed apart, as needing the training install."""
    width = max(len(name) for name in JOBS)
    full = training_install()
    runnable = [f"  {name:<{width}}  {job.summary}" for name, job in JOBS.items() if full or job.serving]
    text = "usage: hybrid <job> [key=value ...]   (hybrid <job> --help for its own options or config)\n\njobs:\n"
    text += "\n".join(runnable)
    if not full:
        text += f"\n\nthe other jobs ({', '.join(n for n, j in JOBS.items() if not j.serving)}) need {NEEDS_TRAINING}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a job; an unknown one is a usage error (exit code 2)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else USAGE_ERROR
    name, rest = argv[0], argv[1:]
    if name not in JOBS:
        print(f"hybrid: no job {name!r}\n{usage()}", file=sys.stderr)
        return USAGE_ERROR
    return JOBS[name].run(name, rest)


if __name__ == "__main__":
    sys.exit(main())
