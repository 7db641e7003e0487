"""Typed config groups: a dataclass per group states each key and its type, and a composed group
is checked against it before any work, so ``trainer.lr=abc`` stops at once with one line naming the
key instead of failing deep inside the optimizer, and a key added with a typo
(``+model.embdim=48``) is refused with the closest real one instead of being ignored.

OmegaConf's structured configs do the type conversion (the library behind Hydra's own structured
configs).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from typing import get_args, get_type_hints

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

from hybrid.errors import ConfigError


def check_types(node: DictConfig, schema: type, group: str, *, resolve: bool = True) -> None:
    """Raise :class:`ConfigError` for the first key of ``node`` (the config group ``group``) that
    ``schema`` (a dataclass) does not declare, or whose value cannot be read as the declared type.

    Values are resolved first (interpolations such as ``${model.img_size}``) unless ``resolve`` is
    false (a whole config, whose run-dir keys resolve only inside a Hydra job); unset required
    values (``???``) pass, so the entry point can name them.
    """
    try:
        values = OmegaConf.to_container(node, resolve=resolve, throw_on_missing=False)
    except MissingMandatoryValue:
        return
    try:
        OmegaConf.merge(OmegaConf.structured(schema), values)
    except ConfigKeyError as err:
        raise ConfigError(unknown_key(".".join(filter(None, [group, str(err.full_key)])), schema, group)) from err
    except ValidationError as err:
        key = ".".join(filter(None, [group, str(err.full_key or "")]))
        value = OmegaConf.select(node, str(err.full_key), throw_on_missing=False) if err.full_key else None
        raise ConfigError(f"{key}={value!r}: expected {_expected(str(err.msg))}") from err


# OmegaConf's names for the types it could not convert a value to, as a user reads them.
_TYPE_WORDS = {"float": "a number", "integer": "an integer", "int": "an integer", "bool": "true or false"}


def _expected(message: str) -> str:
    found = re.search(r"(?:converted to|not a valid) (\w+)", message)
    word = found.group(1).lower() if found else ""
    return _TYPE_WORDS.get(word, word or "another type")


def unknown_key(key: str, schema: type, group: str) -> str:
    """The message for ``key`` (``group.path.name``; ``path.name`` for a whole config, ``group``
    empty), which ``schema`` does not declare: with the closest declared key at that level, when one
    is close."""
    path = key.split(".")[:-1]
    level = schema
    for part in path[1 if group else 0 :]:  # down to the dataclass holding the key (``X | None`` counts as ``X``)
        hint = get_type_hints(level).get(part)
        level = next((t for t in (hint, *get_args(hint)) if is_dataclass(t)), None)
        if level is None:
            break
    return not_a_key(key, [f.name for f in fields(level)] if level is not None else [])


def not_a_key(key: str, known: list[str]) -> str:
    """The one line for ``key`` (dotted), absent from a node whose keys are ``known``: with the
    closest of them when one is close (the same line whether the key came with ``+`` or not)."""
    *path, name = key.split(".")
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {'.'.join([*path, close[0]])}?" if close else f"; the keys are {known}"
    return f"{key} is not a key of {'.'.join(path) or 'the config'}{hint}"
