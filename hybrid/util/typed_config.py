"""Typed config groups: a dataclass per group is the one declaration of each key, its type and its
default.

- :func:`register_schema` stores a schema's defaults in Hydra's ConfigStore as ``/schema/<path>``;
  each YAML file of the group extends it (``defaults: [/schema/<path>@_here_, _self_]``) and sets
  only the values that differ, so no default is written twice (``tests/test_schemas.py``).
- :func:`check_types` checks a composed group against its schema before any work, so
  ``trainer.lr=abc`` stops at once with one line naming the key instead of failing deep inside the
  optimizer, and a key added with a typo (``+model.embdim=48``) is refused with the closest real one.
- :func:`with_defaults` completes a config saved before a key existed (an old checkpoint's) from
  the same schema.

The stored defaults are plain values, not a structured config: the types are checked by
:func:`check_types`, whose one-line messages name the key (Hydra's own would be a traceback-sized
block). OmegaConf's structured configs do the type conversion (the library behind Hydra's own).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields, is_dataclass
from typing import get_args, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

from hybrid.errors import ConfigError

# ConfigStore group holding every schema's defaults (``/schema/data``, ``/schema/model/timm``, ...).
SCHEMA_GROUP = "schema"
# path under SCHEMA_GROUP -> the schema stored there (what the YAML files extend)
SCHEMAS: dict[str, type] = {}


def schema_defaults(schema: type, *, exclude: tuple[str, ...] = ()) -> dict:
    """The defaults ``schema`` declares, as plain values (nested schemas as maps), without the
    fields in ``exclude`` (a whole config's groups, declared by their own schemas)."""
    values = OmegaConf.to_container(OmegaConf.structured(schema))
    return {key: value for key, value in values.items() if key not in exclude}


def register_schema(path: str, schema: type, *, exclude: tuple[str, ...] = ()) -> None:
    """Store ``schema``'s defaults in Hydra's ConfigStore as ``/schema/<path>`` (``path``: ``data``,
    ``model/timm``, ...), the base a YAML file extends with ``/schema/<path>@_here_``."""
    group, _, name = f"{SCHEMA_GROUP}/{path}".rpartition("/")
    ConfigStore.instance().store(group=group, name=name, node=schema_defaults(schema, exclude=exclude))
    SCHEMAS[path] = schema


def with_defaults(values: dict, schema: type) -> dict:
    """``values`` (a group as a plain map, e.g. from an old checkpoint) with every key ``schema``
    declares that it lacks, at the schema's default (nested maps completed the same way)."""
    completed = dict(values)
    for key, default in schema_defaults(schema).items():
        if key not in completed:
            completed[key] = default
        elif isinstance(completed[key], dict):
            nested = next((t for t in _field_types(schema, key) if is_dataclass(t)), None)
            if nested is not None:  # a nested schema (an ``Any`` map, e.g. a _target_ block, stays as it is)
                completed[key] = with_defaults(completed[key], nested)
    return completed


def _field_types(schema: type, name: str) -> tuple:
    hint = get_type_hints(schema)[name]
    return (hint, *get_args(hint))


def check_types(node: DictConfig, schema: type, group: str, *, resolve: bool = True) -> None:
    """Raise :class:`ConfigError` for the first key of ``node`` (the config group ``group``) that
    ``schema`` (a dataclass) does not declare, or whose value cannot be read as the declared type.

    Values are resolved first (interpolations such as ``${model.img_size}``) unless ``resolve`` is
    false (a whole config, whose run-dir keys resolve only inside a Hydra job); unset required
    values (``???``) pass, so the entry point can name them.
    """
    try:
        _typed(node, schema, group, resolve=resolve)
    except MissingMandatoryValue:
        return


def _typed(node: DictConfig, schema: type, group: str, *, resolve: bool) -> DictConfig:
    """``node``'s values merged into ``schema`` (a structured config, types converted), with
    :func:`check_types`'s errors; an interpolation of an unset value raises ``MissingMandatoryValue``."""
    values = OmegaConf.to_container(node, resolve=resolve, throw_on_missing=False)
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), values)
    except ConfigKeyError as err:
        raise ConfigError(unknown_key(".".join(filter(None, [group, str(err.full_key)])), schema, group)) from err
    except ValidationError as err:
        key = ".".join(filter(None, [group, str(err.full_key or "")]))
        value = OmegaConf.select(node, str(err.full_key), throw_on_missing=False) if err.full_key else None
        raise ConfigError(f"{key}={value!r}: expected {_expected(str(err.msg))}") from err


def typed_config(node: DictConfig, schema: type, group: str = ""):
    """``node`` as an instance of ``schema`` (the dataclass), its values converted to the declared
    types, after :func:`check_types`'s checks: what a job hands down instead of the raw config.
    An unset required value (``???``) raises ``MissingMandatoryValue`` naming it with its group
    (``data.root``), which the entry point reports as one line."""
    try:
        return OmegaConf.to_object(_typed(node, schema, group, resolve=True))
    except MissingMandatoryValue as err:
        err.full_key = ".".join(filter(None, [group, str(err.full_key or "")]))
        raise


def typed_job(cfg: DictConfig, schema: type, *, groups: tuple[str, ...]):
    """A job's own keys of ``cfg`` (every field of ``schema`` but its config ``groups``, each typed
    by its own schema, and left at the schema's default here) as an instance of ``schema``, with
    :func:`typed_config`'s conversions and checks."""
    own = {}
    for item in fields(schema):
        if item.name in groups or item.name not in cfg:
            continue
        value = cfg[item.name]  # resolved (a job's keys may interpolate the run's paths)
        own[item.name] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return typed_config(OmegaConf.create(own), schema)


# OmegaConf's names for the types it could not convert a value to, as a user reads them.
_TYPE_WORDS = {"float": "a number", "integer": "an integer", "int": "an integer", "bool": "true or false"}


def _expected(message: str) -> str:
    if "ListConfig" in message:
        return "a list, e.g. [1,2]"
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
        types = _field_types(level, part) if part in get_type_hints(level) else ()
        level = next((t for t in types if is_dataclass(t)), None)
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
