"""A resumed run is the run it resumes: ``ckpt_path=<run>/checkpoints/last.pt`` continues with the
config saved in that checkpoint, not with today's defaults. A command-line override that would
change the run is refused, naming each key with its saved and given values; the few that may change
on resume (:data:`RESUME_MAY_CHANGE`: how long, how it is shown, where things are now) are applied
and logged."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from hybrid.errors import ConfigError
from hybrid.util.hydra_job import override_key

log = logging.getLogger(__name__)

# Keys (and whole nodes) a resume may set: more epochs or patience, the logger, how batches are
# loaded and shown, threads, and where the data and outputs are now (a dataset staged elsewhere).
RESUME_MAY_CHANGE = (
    "trainer.max_epochs",
    "trainer.early_stopping.patience",
    "trainer.progress_bar",
    "trainer.num_threads",
    "data.num_workers",
    "data.root",
    "data.cache_dir",
    "logger",
    "paths",
    "task_name",
)
# Set on every resume: the file it resumes from, and no other weights to start from.
RESUME_SETS = ("ckpt_path", "init_from")
_ABSENT = "<absent>"


def may_change_on_resume(key: str) -> bool:
    """Whether ``key`` (dotted) lies in :data:`RESUME_MAY_CHANGE`."""
    return any(key == allowed or key.startswith(allowed + ".") for allowed in RESUME_MAY_CHANGE)


def leaves(node, prefix: str = "") -> dict[str, object]:
    """``{dotted key: value}`` of every leaf of a nested container (lists count as leaves)."""
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, object] = {}
    for key, value in node.items():
        out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _scope(cfg: DictConfig, key: str) -> str:
    """The part of the config an override sets: its key, or all of it for a group that writes
    across the config (``experiment=...``, ``hparams_search=...``)."""
    return key if OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT else ""


def _resolved(cfg: DictConfig, scope: str) -> dict[str, object]:
    if not scope:  # the whole config, but where this process writes is not the run
        return {
            key: value for top in cfg if top not in ("paths", "hydra") for key, value in _resolved(cfg, top).items()
        }
    node = OmegaConf.select(cfg, scope)
    if not OmegaConf.is_config(node):
        return {scope: node}
    return leaves(OmegaConf.to_container(node, resolve=True), scope)


def resumed_config(cfg: DictConfig, saved: dict, overrides: Iterable[str], ckpt_path: str) -> DictConfig:
    """The config a resumed run continues with: ``saved`` (the checkpoint's resolved config), with
    the keys of ``overrides`` (the command line) that :func:`may_change_on_resume` taken from the
    composed ``cfg``; every other override must leave its keys at their saved values."""
    saved_leaves = leaves(saved)
    changed, refused = {}, []
    for scope in dict.fromkeys(_scope(cfg, override_key(o)) for o in overrides):
        if scope in RESUME_SETS:
            continue
        if scope and may_change_on_resume(scope):
            changed[scope] = OmegaConf.select(cfg, scope)
            continue
        for key, value in _resolved(cfg, scope).items():
            before = saved_leaves.get(key, _ABSENT)
            if value == before or key in RESUME_SETS:
                continue
            if may_change_on_resume(key):
                changed[key] = value
            else:
                refused.append(f"{key}={value!r} (saved: {before!r})")
    if refused:
        raise ConfigError(
            f"ckpt_path={ckpt_path} resumes a run with its saved config; these overrides would change it: "
            f"{', '.join(refused)}. Drop them, or start a new run from its weights with init_from={ckpt_path}"
        )
    resumed = OmegaConf.create(saved)
    for key in ("paths", "task_name"):  # where this process writes, not what the run is
        OmegaConf.update(resumed, key, cfg[key], merge=False)
    for key, value in changed.items():
        shown = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        old = OmegaConf.select(resumed, key, default=_ABSENT)
        old = OmegaConf.to_container(old) if OmegaConf.is_config(old) else old
        if shown != old:
            log.info("resume: %s %s -> %s", key, old, shown)
        OmegaConf.update(resumed, key, value, merge=False)
    OmegaConf.update(resumed, "ckpt_path", ckpt_path, merge=False)
    OmegaConf.update(resumed, "init_from", None, merge=False)  # the weights it started from are in the checkpoint
    return resumed
