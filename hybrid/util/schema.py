"""Typed config groups: a dataclass per group states each key's type, and a composed group is
checked against it before any work, so ``trainer.lr=abc`` stops at once with one line naming the
key instead of failing deep inside the optimizer.

OmegaConf's structured configs do the type conversion (the library behind Hydra's own structured
configs); keys a schema does not declare are left to their owner's checks.
"""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, ValidationError

from hybrid.errors import ConfigError


def check_types(node: DictConfig, schema: type, group: str) -> None:
    """Raise :class:`ConfigError` for the first key of ``node`` (the config group ``group``) whose
    value cannot be read as the type ``schema`` (a dataclass) declares for it.

    Values are resolved first (interpolations such as ``${model.img_size}``); unset required
    values (``???``) pass, so the entry point can name them.
    """
    try:
        values = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    except MissingMandatoryValue:
        return
    typed = OmegaConf.structured(schema)
    OmegaConf.set_struct(typed, False)  # undeclared keys are not this check's business
    try:
        OmegaConf.merge(typed, values)
    except ValidationError as err:
        key = f"{group}.{err.full_key}" if err.full_key else group
        value = OmegaConf.select(node, str(err.full_key), throw_on_missing=False) if err.full_key else None
        raise ConfigError(f"{key}={value!r}: expected {_expected(str(err.msg))}") from err


# OmegaConf's names for the types it could not convert a value to, as a user reads them.
_TYPE_WORDS = {"float": "a number", "integer": "an integer", "int": "an integer", "bool": "true or false"}


def _expected(message: str) -> str:
    found = re.search(r"(?:converted to|not a valid) (\w+)", message)
    word = found.group(1).lower() if found else ""
    return _TYPE_WORDS.get(word, word or "another type")
