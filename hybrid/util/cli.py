"""Command-line options declared once, on the dataclass they fill: each field's default and help
text (``option``) become its ``--flag`` and its ``--help`` line (``hybrid serve``'s argparse
flags), or its ``key=value`` line in a Hydra job's ``--help`` (the generators)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, Field, field, fields
from typing import get_args, get_type_hints

from hybrid.errors import USAGE_ERROR, HybridError


def option(default, help: str, choices: Sequence[str] | None = None) -> Field:
    """A dataclass field with ``default`` and the line ``--help`` shows for its command-line option
    (``choices``: the only values its flag takes)."""
    return field(default=default, metadata={"help": help, **({"choices": list(choices)} if choices else {})})


def field_default(spec_field: Field):
    """The default of a dataclass field, whether given as a value or as a factory."""
    return spec_field.default if spec_field.default is not MISSING else spec_field.default_factory()


def add_options(parser, spec_type: type, *, exclude: tuple[str, ...] = ()) -> None:
    """One ``--name`` per field of the dataclass ``spec_type`` (underscores as dashes) but those in
    ``exclude``, typed and described as the field is: a bool becomes a switch, a tuple takes its
    count of numbers. ``parser``: an ``ArgumentParser`` or one of its argument groups."""
    hints = get_type_hints(spec_type)
    for spec_field in (f for f in fields(spec_type) if f.name not in exclude):
        flag = f"--{spec_field.name.replace('_', '-')}"
        default = field_default(spec_field)
        # a default of None: the flag's type is the annotation's other one (float | None -> float)
        value_type = (
            type(default)
            if default is not None
            else next(t for t in get_args(hints[spec_field.name]) if t is not type(None))
        )
        choices = spec_field.metadata.get("choices")
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        # no default: its help says what happens without the flag
        text = spec_field.metadata.get("help", "") + ("" if default is None else f" (default: {shown})")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", default=default, help=text)
        elif isinstance(default, tuple):
            metavar = ("LOW", "HIGH") if len(default) == 2 else None
            parser.add_argument(
                flag, type=type(default[0]), nargs=len(default), default=default, metavar=metavar, help=text
            )
        else:
            parser.add_argument(flag, type=value_type, default=default, choices=choices, help=text)


def spec_from(spec_type: type, args) -> object:
    """The ``spec_type`` that ``args`` (a mapping with at least its fields: parsed flags, a job's
    config) describe, lists back to the tuples declared."""
    values = {f.name: args[f.name] for f in fields(spec_type)}
    return spec_type(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in values.items()})


def describe_keys(spec_type: type) -> list[str]:
    """One ``key=default  help`` line per field of ``spec_type`` that has a help text."""
    lines = []
    for spec_field in (f for f in fields(spec_type) if "help" in f.metadata):
        default = field_default(spec_field)
        shown = f"[{','.join(map(str, default))}]" if isinstance(default, tuple) else default
        lines.append(f"  {spec_field.name}={shown}\n      {spec_field.metadata['help']}")
    return lines


def command_main(parser, run, report, argv: list[str] | None = None) -> int:
    """An argparse command (``hybrid serve``, ``hybrid survey``): ``run(args)``'s exit code; a
    mistake (a missing file, a foreign model, a bad flag value) one line through ``report`` and
    exit code 2."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except HybridError as err:
        report(str(err))
        return USAGE_ERROR
