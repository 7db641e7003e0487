"""mkdocs hook: the configuration page's key tables, generated from the typed schemas.

Every key is declared once, on its group's or job's dataclass (``hybrid.util.typed_config.SCHEMAS``, filled
as each job's module is imported); this hook writes each schema's keys, types, defaults and the
comments beside them into ``docs/configuration.md`` where it says ``<!-- config-keys -->``, so the
page cannot drift from the code.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import re
import textwrap
import tokenize
from dataclasses import fields, is_dataclass
from typing import get_args, get_type_hints

MARKER = "<!-- config-keys -->"
# Fields that hold a whole config group (typed by that group's own schema) in a job's schema.
GROUP_FIELDS = ("data", "model", "trainer", "logger", "paths", "hydra")
# Where each schema's keys live in a composed config (the schema path is the ConfigStore's).
TITLES = {
    "data": "data", "synthetic": "data.synthetic", "model/cats_hybrid": "model (model=cats_hybrid)",
    "model/timm": "model (the timm baselines)", "model/xie2019": "model (model=xie2019)", "trainer": "trainer",
    "logger": "logger", "paths": "paths", "train": "train.yaml (top level)", "two_stage": "two_stage",
    "infer": "infer.yaml (hybrid infer)", "export": "hybrid export", "benchmark": "hybrid benchmark",
    "evaluate": "hybrid evaluate", "evaluate_video": "hybrid evaluate-video", "prune": "hybrid prune",
    "report": "hybrid report", "prepare": "hybrid prepare", "job/synthetic": "hybrid synthetic",
    "job/synthetic_video": "hybrid synthetic-video",
}  # fmt: skip


def _comment(token: str) -> str:
    """A comment's text without the markers meant for tools (``type: ignore[...]``, ``fmt: skip``)."""
    text = token.lstrip("#").strip()
    text = re.sub(r"^type: ignore\[[\w-]+\]\s*(#\s*)?", "", text)
    return "" if text == "fmt: skip" else text


def field_comments(schema: type) -> dict[str, tuple[str, str]]:
    """``{field: (annotation, comment)}`` from the source of ``schema`` and the dataclasses it
    extends: the comment at the end of the field's line, or the comment lines right above it."""
    found = {}
    for cls in reversed([c for c in schema.__mro__ if is_dataclass(c)]):
        source = textwrap.dedent(inspect.getsource(cls))
        comments: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = _comment(token.string)
        lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            line = node.lineno
            text = comments.get(line, "") if lines[line - 1].split("#")[0].strip() else ""
            above, row = [], line - 1
            while row in comments and lines[row - 1].lstrip().startswith("#"):
                above.insert(0, comments[row])
                row -= 1
            found[node.target.id] = (ast.unparse(node.annotation), " ".join(filter(None, [*above, text])))
    return found


def _text(prose: str) -> str:
    """Comment or docstring text for a markdown table: ``<`` and ``>`` outside code spans escaped
    (``<root>`` is a placeholder, not an HTML tag), ``|`` escaped."""
    parts = re.split(r"(`+[^`]*`+)", prose)
    escaped = [p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts]
    return "".join(escaped).replace("|", "\\|")


def _nested(schema: type, name: str) -> type | None:
    hint = get_type_hints(schema)[name]
    return next((t for t in (hint, *get_args(hint)) if is_dataclass(t)), None)


def _shown(value) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`".replace("|", "\\|")


def rows(schema: type, defaults: dict, prefix: str = "") -> list[str]:
    """One table row per key of ``schema`` (nested schemas as dotted keys)."""
    described = field_comments(schema)
    out = []
    for item in fields(schema):
        if not prefix and item.name in GROUP_FIELDS and defaults.get(item.name) is None:
            continue
        nested = _nested(schema, item.name)
        if nested is not None and isinstance(defaults.get(item.name), dict):
            out += rows(nested, defaults[item.name], f"{prefix}{item.name}.")
            continue
        annotation, comment = described.get(item.name, ("", ""))
        comment = comment or item.metadata.get("help", "")
        if isinstance(defaults.get(item.name), dict | list) and len(str(defaults[item.name])) > 60:
            shown = "(a block; see the schema)"
        else:
            shown = _shown(defaults.get(item.name))
        out.append(f"| `{prefix}{item.name}` | `{annotation}` | {shown} | {_text(comment)} |")
    return out


def key_tables() -> str:
    """Every registered schema's keys, one table each."""
    from hybrid.commands import JOBS
    from hybrid.util.typed_config import SCHEMAS, schema_defaults

    for job in JOBS.values():  # each job's module registers its schemas on import
        importlib.import_module(job.module)
    sections = []
    for path in sorted(SCHEMAS, key=lambda p: list(TITLES).index(p) if p in TITLES else len(TITLES)):
        schema = SCHEMAS[path]
        summary = _text(" ".join((inspect.getdoc(schema) or "").split("\n\n")[0].split()))
        table = ["| key | type | default | meaning |", "|---|---|---|---|", *rows(schema, schema_defaults(schema))]
        sections.append(
            f"### {TITLES.get(path, path)}\n\n{summary} (`{schema.__module__}.{schema.__name__}`)\n\n"
            + "\n".join(table)
        )
    return "\n\n".join(sections)


def on_page_markdown(markdown: str, page, **_) -> str:
    """mkdocs' hook: fill the marker on the page that has it."""
    return markdown.replace(MARKER, key_tables()) if MARKER in markdown else markdown
