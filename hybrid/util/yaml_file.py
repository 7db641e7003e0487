"""A small YAML file that must hold a mapping (a survey's header, a user's code map), read with one
line for each way it can be wrong."""

from __future__ import annotations

from pathlib import Path

from hybrid.errors import DataError


def read_mapping(path: str | Path, flag: str, shape: str) -> dict:
    """The mapping in the YAML file ``path`` (empty for an empty file); ``flag`` (``--header``)
    and ``shape`` (what it must map) name it in the line for a file that cannot be read, is not
    YAML or holds something else."""
    import yaml

    path = Path(path).expanduser()
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"{flag} {path}: cannot be read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise DataError(f"{flag} {path}: not YAML ({str(err).splitlines()[0]})") from err
    loaded = {} if loaded is None else loaded
    if not isinstance(loaded, dict):
        raise DataError(f"{flag} {path}: must be {shape}")
    return loaded
