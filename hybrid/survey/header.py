"""A survey's header: the pipe section and how it was inspected, from ``hybrid survey``'s flags or
a YAML file (``--header FILE.yaml``, its keys the fields of :class:`SurveyHeader`; a flag given
too wins)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from hybrid.errors import DataError
from hybrid.util.cli import option
from hybrid.util.yaml_file import read_mapping

DIRECTIONS = ("downstream", "upstream")


@dataclass(frozen=True)
class SurveyHeader:
    """What the survey is of (EN 13508-2's and PACP's header, the fields a draft can carry)."""

    section: str = option("", "the section (pipe segment) id")
    from_node: str = option("", "the manhole the survey starts at")
    to_node: str = option("", "the manhole it ends at")
    direction: str = option("", "downstream or upstream (with the flow, or against it)")
    date: str = option("", "the inspection date")
    operator: str = option("", "who ran the inspection")
    location: str = option("", "the street or place")
    material: str = option("", "the pipe's material")
    shape: str = option("", "the pipe's shape")
    size_mm: str = option("", "height (x width) in millimetres")
    remarks: str = option("", "anything else the inspector should know")

    def __post_init__(self):
        if self.direction and self.direction not in DIRECTIONS:
            raise DataError(f"direction {self.direction!r}: one of {', '.join(DIRECTIONS)}")

    def items(self) -> list[tuple[str, str]]:
        """``(field, value)`` of the fields that are filled, in order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]


HEADER_KEYS = tuple(f.name for f in fields(SurveyHeader))


def read_header(path: str | Path) -> SurveyHeader:
    """The header in the YAML file ``path``; an unknown key is named in one line."""
    path = Path(path).expanduser()
    loaded = read_mapping(path, "--header", f"a mapping of header keys ({', '.join(HEADER_KEYS)})")
    unknown = sorted(str(key) for key in loaded if key not in HEADER_KEYS)
    if unknown:
        raise DataError(f"--header {path}: unknown key {unknown[0]!r} (known: {', '.join(HEADER_KEYS)})")
    try:
        return SurveyHeader(**{key: "" if value is None else str(value) for key, value in loaded.items()})
    except DataError as err:
        raise DataError(f"--header {path}: {err}") from None


def survey_header(path: str | Path | None, **given: str | None) -> SurveyHeader:
    """The header of ``path`` (or an empty one) with the fields ``given`` (flags) that are set."""
    header = read_header(path) if path else SurveyHeader()
    return replace(header, **{key: str(value) for key, value in given.items() if value})
