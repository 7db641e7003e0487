"""Which hybrid modules a raw OmegaConf config reaches while a job runs (deliverable "typed objects
down" of the one-place-for-each-setting issue): the job runs under a profiler that notes, at every
call into a ``hybrid.*`` function once the job's own function began, the functions handed a
``DictConfig`` (the job's composed config, a node of it, or any other such as a checkpoint's).

    python -m tests.config_reach JOB_FUNCTION JOB [overrides ...]

prints one JSON object: ``{"module": number of calls handed a DictConfig}``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from omegaconf import DictConfig

from hybrid.commands import main as hybrid_main


def reach(job_function: str, argv: list[str]) -> Counter:
    """Run ``hybrid <argv>``; count, per module, the calls handed a DictConfig after the first call
    of ``job_function`` (e.g. ``hybrid.inference:infer``)."""
    module_name, function_name = job_function.split(":")
    calls: Counter = Counter()
    started = False

    def profiler(frame, event, _arg):
        nonlocal started
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("hybrid"):
            return
        code = frame.f_code
        started = started or (module == module_name and code.co_name == function_name)
        arguments = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if started and any(isinstance(frame.f_locals.get(name), DictConfig) for name in arguments):
            calls[module] += 1

    sys.setprofile(profiler)
    try:
        hybrid_main(argv)
    finally:
        sys.setprofile(None)
    return calls


if __name__ == "__main__":
    print(json.dumps(reach(sys.argv[1], sys.argv[2:])))
