"""From a model's labels to a standard's observation codes: Sewer-ML's 17 codes (and a binary
model's ``Defect``) to EN 13508-2 main codes and NASSCO PACP code families.

The map is one data file in the package, ``codes.csv``: a row per label with each standard's code,
its name, whether the mapping is one-to-one (``review`` no) or leaves a choice to the inspector
(``review`` yes: one Sewer-ML code covering several of the standard's, or a PACP family whose
detail code the image does not give), why, and the sources. ``@start`` and ``@finish`` are the
survey's own start and finish observations. A user's map (``--codes FILE.yaml``) replaces the
labels it names::

    RB: BAB                                   # a code: one-to-one, no review
    OB: {code: BAF, name: Surface damage, review: false}
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hybrid.errors import DataError
from hybrid.util.yaml_file import read_mapping

# The standards a survey can be coded in, with the column prefix of codes.csv and their name.
STANDARDS = {"en13508": "EN 13508-2", "pacp": "NASSCO PACP"}
DEFAULT_STANDARD = "en13508"
START, FINISH = "@start", "@finish"
CODES_FILE = "codes.csv"
YAML_KEYS = ("code", "name", "review")


@dataclass(frozen=True)
class Code:
    """One label's code in one standard: ``review`` when the inspector must choose or check it."""

    label: str
    code: str
    name: str
    review: bool
    why: str = ""
    source: str = ""


def check_standard(standard: str) -> str:
    """``standard`` if it is one of :data:`STANDARDS`, else one line naming them."""
    if standard not in STANDARDS:
        raise DataError(f"--standard {standard}: unknown; one of {', '.join(STANDARDS)}")
    return standard


def builtin_codes(standard: str) -> dict[str, Code]:
    """The package's map (``codes.csv``) for ``standard``, by label."""
    check_standard(standard)
    text = resources.files("hybrid.survey").joinpath(CODES_FILE).read_text(encoding="utf-8")
    return {
        row["label"]: Code(
            row["label"],
            row[standard],
            row[f"{standard}_name"],
            row[f"{standard}_review"] == "yes",
            row["why"],
            row["source"],
        )
        for row in csv.DictReader(text.splitlines())
    }


def _user_code(path: Path, label: str, value) -> Code:
    """One entry of a user's map: a code, or ``{code, name, review}``."""
    if isinstance(value, str | int):
        return Code(label, str(value), str(value), False, source=str(path))
    if not isinstance(value, dict) or "code" not in value:
        raise DataError(f"{path}: {label}: give a code (RB: BAB) or {{code: BAB, name: ..., review: true}}")
    unknown = sorted(set(value) - set(YAML_KEYS))
    if unknown:
        raise DataError(f"{path}: {label}: unknown key {unknown[0]!r} (known: {', '.join(YAML_KEYS)})")
    # a user's YAML, not a config: what it leaves out takes the entry's own defaults
    entry = {"name": value["code"], "review": False, **value}
    if not isinstance(entry["review"], bool):
        raise DataError(f"{path}: {label}: review must be true or false, not {entry['review']!r}")
    return Code(label, str(entry["code"]), str(entry["name"]), entry["review"], source=str(path))


def user_codes(path: str | Path, standard: str) -> dict[str, Code]:
    """The built-in map for ``standard`` with the labels the YAML file ``path`` names replaced."""
    path = Path(path).expanduser()
    loaded = read_mapping(path, "--codes", "a mapping of each label to its code (RB: BAB)")
    codes = builtin_codes(standard)
    codes.update({str(label): _user_code(path, str(label), value) for label, value in loaded.items()})
    return codes


class CodeMap:
    """The codes a survey writes: ``lookup(label)`` gives the label's :class:`Code`; a label the map
    lacks gets an empty code flagged ``review`` and is named once through ``warn``."""

    def __init__(self, standard: str = DEFAULT_STANDARD, path: str | Path | None = None, warn=None):
        self.standard = check_standard(standard)
        self.path = path
        self.codes = user_codes(path, standard) if path else builtin_codes(standard)
        self.warn = warn or (lambda line: None)
        self.missing: set[str] = set()

    def lookup(self, label: str) -> Code:
        """``label``'s code (an empty one flagged review when the map lacks it)."""
        found = self.codes.get(label)
        if found is not None:
            return found
        if label not in self.missing:
            self.missing.add(label)
            where = self.path or f"hybrid/survey/{CODES_FILE}"
            self.warn(f"model label {label!r} is not in the code map ({where}); its observations are flagged review")
        return Code(label, "", label, True)


def code_table(standard: str, path: str | Path | None = None) -> str:
    """``hybrid survey --list-codes``: the map for ``standard`` as an aligned text table."""
    codes = user_codes(path, standard) if path else builtin_codes(standard)
    rows = [("label", "code", "review", "name")] + [
        (c.label, c.code or "-", "review" if c.review else "", c.name) for c in codes.values()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{STANDARDS[standard]} codes ({path or 'hybrid/survey/' + CODES_FILE}):"]
    lines += [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows
    ]
    sources = sorted({c.source for c in codes.values() if c.source})
    return "\n".join(lines + ["sources:"] + [f"  {s}" for s in sources])
