"""``hybrid <command>``: one command for hybrid's jobs (the console script of the package).

Each command's module is imported only when it runs, so ``hybrid serve`` needs nothing but the
serving install (no torch). The training jobs keep their entry points (``train.py``, ``infer.py``,
``python -m hybrid.<job>``) until the "One place for each setting, one command" issue brings them here.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with a main(argv) -> exit code, one line for hybrid --help)
COMMANDS = {
    "serve": ("hybrid.serve.command", "predict with an exported .onnx, without the training stack"),
}


def usage() -> str:
    """What ``hybrid --help`` prints: each command with its line."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: hybrid <command> [options]   (hybrid <command> --help for its own)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command; an unknown one is a usage error (exit code 2)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hybrid: no command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    return int(importlib.import_module(COMMANDS[name][0]).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
