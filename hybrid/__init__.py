"""hybrid: a Hydra-composed CNN-Transformer classifier for sewer-pipe CCTV inspection."""

import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"

_MAIN_BLOCK = 'if __name__ == "__main__":'


def _started_module() -> str | None:
    """The ``hybrid.*`` module this interpreter was started to run with ``python -m``, if any."""
    argv = getattr(_sys, "orig_argv", [])
    if "-m" not in argv or argv.index("-m") + 1 >= len(argv):
        return None
    module = argv[argv.index("-m") + 1]
    return module if module.startswith("hybrid.") else None


def _refuse_what_runs_nothing() -> None:
    """``python -m hybrid.<module>`` of a module that is not a job (no ``__main__`` block) would
    exit 0 having done nothing, e.g. ``python -m hybrid.data.cache_builder data=csv``, the prepare
    job's old path: refuse it in one line (exit code 2) naming the jobs instead. The jobs are
    ``hybrid.jobs.<job>`` and ``hybrid.commands``."""
    module = _started_module()
    if module is None:
        return
    path = _Path(__file__).parent.joinpath(*module.split(".")[1:])
    source = path.with_suffix(".py")
    if path.is_dir() or (source.is_file() and _MAIN_BLOCK in source.read_text()):
        return  # a package (Python refuses it itself) or a module that runs something
    why = "is not a job: it runs nothing" if source.is_file() else "does not exist"
    _sys.stderr.write(
        f"python -m {module} {why}; run a job with hybrid <job> (hybrid --help lists them) "
        "or python -m hybrid.jobs.<job>\n"
    )
    raise SystemExit(2)


_refuse_what_runs_nothing()
