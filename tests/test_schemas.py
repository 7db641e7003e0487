"""Each config key is declared once: by its group's typed schema (``hybrid.util.typed_config``), whose
defaults Hydra composes under the YAML files; the files set only values that differ, and no code
reads a declared key with a default of its own."""

from __future__ import annotations

import ast
import importlib
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest
from omegaconf import OmegaConf

from hybrid.util.typed_config import SCHEMAS, schema_defaults
from tests.conftest import compose_config, import_job_modules

import_job_modules()

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRIMARY = sorted(p for p in CONF.glob("*.yaml"))
GROUP_FILES = sorted(
    p for group in ("data", "model", "trainer", "logger", "paths") for p in (CONF / group).glob("*.yaml")
)
# Hydra's own keys (hydra.*, the sweeper's and launcher's) are declared by Hydra's schemas.
HYDRA_OWN = ("hydra", "hparams_search")


def nested_schema(schema: type, key: str) -> type | None:
    """The dataclass a field of ``schema`` holds (``X | None`` counts as ``X``), or None for a leaf."""
    hint = get_type_hints(schema)[key]
    return next((t for t in (hint, *get_args(hint)) if is_dataclass(t)), None)


def declared_keys(schema: type, prefix: str = "") -> dict[str, Any]:
    """Every key ``schema`` declares, dotted, with its default (a field typed ``Any`` is a leaf: it
    holds a group or a ``_target_`` block, declared elsewhere)."""
    keys = {}
    defaults = schema_defaults(schema)
    for spec_field in fields(schema):
        name = f"{prefix}{spec_field.name}"
        inner = nested_schema(schema, spec_field.name)
        keys[name] = defaults[spec_field.name]
        if inner is not None:
            keys.update(declared_keys(inner, f"{name}."))
    return keys


def yaml_values(path: Path) -> dict[str, Any]:
    """The dotted leaf keys a YAML file sets (its ``defaults`` list aside); a map under a key that is
    a leaf of the schema stays whole."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    raw.pop("defaults", None)
    return raw


def flatten(values: dict, schema: type, prefix: str = "") -> dict[str, Any]:
    """``values`` as dotted keys, descending only where ``schema`` declares a nested schema (an
    undeclared key is kept, so it can be reported)."""
    out = {}
    names = {f.name for f in fields(schema)}
    for key, value in values.items():
        inner = nested_schema(schema, key) if key in names else None
        if isinstance(value, dict) and inner is not None:
            out.update(flatten(value, inner, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def base_schema(path: Path) -> tuple[str, type]:
    """The schema a YAML file extends: ``/schema/<x>@_here_`` in its defaults, or that of the file of
    its own group it builds on (``data/folder.yaml`` on ``data/csv.yaml``)."""
    for entry in OmegaConf.load(path).get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/") and entry.endswith("@_here_"):
            name = entry.removeprefix("/schema/").removesuffix("@_here_")
            return name, SCHEMAS[name]
        if isinstance(entry, str) and not entry.startswith("/") and entry != "_self_":
            return base_schema(path.parent / f"{entry}.yaml")
    raise AssertionError(f"{path.relative_to(ROOT)} extends no schema: add /schema/<group>@_here_ to its defaults")


@pytest.mark.parametrize("path", PRIMARY + GROUP_FILES, ids=lambda p: str(p.relative_to(CONF)))
def test_a_config_file_sets_only_declared_keys_and_only_values_that_differ(path):
    name, schema = base_schema(path)
    declared = declared_keys(schema)
    for key, value in flatten(yaml_values(path), schema).items():
        assert key in declared, f"{path.relative_to(ROOT)}: {key} is not declared by {schema.__name__}"
        assert value != declared[key] or type(value) is not type(declared[key]), (
            f"{path.relative_to(ROOT)}: {key}: {value!r} is {schema.__name__}'s default already (/schema/{name})"
        )


def test_every_key_is_declared_once():
    """Each key of each group: one declaration, in its schema; no YAML file restates it."""
    declarations: dict[str, list[str]] = {}
    for name, schema in SCHEMAS.items():
        for key in declared_keys(schema):
            declarations.setdefault(f"{name}:{key}", []).append(schema.__name__)
    for path in PRIMARY + GROUP_FILES:
        name, schema = base_schema(path)
        declared = declared_keys(schema)
        for key, value in flatten(yaml_values(path), schema).items():
            if key in declared and value == declared[key] and type(value) is type(declared[key]):
                declarations[f"{name}:{key}"].append(str(path.relative_to(ROOT)))
    assert len(declarations) > 250  # every group and job (data alone declares 45)
    twice = {key: where for key, where in declarations.items() if len(where) != 1}
    assert not twice


EXPERIMENT_GROUPS = {
    "data": "data",
    "model": "model/cats_hybrid",
    "trainer": "trainer",
    "logger": "logger",
    "two_stage": "two_stage",
}


@pytest.mark.parametrize("path", sorted((CONF / "experiment").glob("*.yaml")), ids=lambda p: p.stem)
def test_an_experiment_sets_declared_keys(path):
    """A recipe may pin any value (its results stay put when a default changes), but only of keys the
    schemas declare."""
    values = yaml_values(path)
    for top, value in values.items():
        if top in HYDRA_OWN:
            continue
        schema = SCHEMAS[EXPERIMENT_GROUPS.get(top, "train")]
        inner = value if top in EXPERIMENT_GROUPS else {top: value}
        declared = declared_keys(schema)
        for key in flatten(inner, schema):
            assert key in declared, f"{path.relative_to(ROOT)}: {top}.{key} is not declared by {schema.__name__}"


def test_a_group_file_extends_a_schema_and_a_job_composes_its_defaults():
    assert {base_schema(p)[0] for p in GROUP_FILES} >= {"data", "trainer", "logger", "paths", "model/timm"}
    cfg = compose_config(overrides=["model=resnet18", "logger=none"])
    assert cfg.trainer.momentum == 0.9 and cfg.data.rows == "all" and cfg.model.img_size == 480
    assert cfg.model.network.architecture == "resnet18" and cfg.logger.project == "hybrid"


# --- the source: no declared key read with a default -------------------------------------------

SOURCE = sorted((ROOT / "hybrid").rglob("*.py"))


def declared_names() -> tuple[set[str], set[str]]:
    """Every declared key's last part, and every dotted key (``trainer.lr``) of the groups."""
    names, dotted = set(), set()
    for name, schema in SCHEMAS.items():
        group = name.split("/")[0]
        for key in declared_keys(schema):
            names.add(key.rsplit(".", 1)[-1])
            dotted.add(key if group in {"train", *SCHEMA_JOBS} else f"{group}.{key}")
    return names, dotted


SCHEMA_JOBS = ("infer", "export", "benchmark", "evaluate", "evaluate_video", "prepare", "prune", "report")


def default_reads(path: Path, names: set[str], dotted: set[str]) -> list[str]:
    """``x.get("key", ...)`` / ``x.get("key")`` and ``OmegaConf.select(x, "a.b", default=...)`` of
    declared keys in the file at ``path`` (the
    environment's variables aside)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, first = node.func, node.args[0]
        literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
        if isinstance(func, ast.Attribute) and func.attr == "get" and literal in names:
            if not (isinstance(func.value, ast.Attribute) and func.value.attr == "environ"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .get({literal!r})")
        elif isinstance(func, ast.Attribute) and func.attr == "select" and len(node.args) > 1:
            key = node.args[1]
            has_default = any(k.arg == "default" for k in node.keywords)
            if has_default and isinstance(key, ast.Constant) and key.value in dotted:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: select(..., {key.value!r}, default=...)")
    return found


def test_no_code_reads_a_declared_key_with_a_default():
    names, dotted = declared_names()
    assert {"momentum", "rows", "patience", "trainer.momentum"} <= names | dotted
    reads = [read for path in SOURCE for read in default_reads(path, names, dotted)]
    assert not reads, "read the key itself (its schema gives every config the default):\n" + "\n".join(reads)


def test_the_source_check_finds_a_read_with_a_default(tmp_path):
    names, dotted = declared_names()
    sample = tmp_path / "sample.py"
    sample.write_text(
        'import os\nm = cfg.get("momentum", 0.9)\nn = os.environ.get("rows")\n'
        'o = OmegaConf.select(cfg, "trainer.lr", default=1e-3)\np = OmegaConf.select(cfg, "trainer.lr")\n'
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tests.test_schemas.ROOT", tmp_path)
        reads = default_reads(sample, names, dotted)
    assert [r.split(": ", 1)[1] for r in reads] == [
        ".get('momentum')",
        "select(..., 'trainer.lr', default=...)",
    ]


def test_a_field_without_a_default_is_mandatory_in_the_schema():
    """Required keys are ``???`` (Hydra's missing value), never a dataclass field without default:
    the YAML files compose over every default."""
    for schema in SCHEMAS.values():
        assert all(f.default is not MISSING or f.default_factory is not MISSING for f in fields(schema)), schema


def test_an_old_checkpoint_config_gets_the_keys_added_since_from_the_schemas(tmp_path):
    """A file written before a key existed loads with that key at its schema default (the meaning
    it had before), and keeps every value it has."""
    import torch

    from hybrid.engine.checkpoint import FORMAT, CheckpointRecord

    config = compose_config(overrides=["model=resnet18", "logger=none"])
    old = OmegaConf.to_container(config, resolve=False)
    old["paths"] = {}
    for group, key in [("data", "rows"), ("data", "layout"), ("trainer", "momentum"), ("model", "drop_path_rate")]:
        del old[group][key]
    del old["trainer"]["ema"]["warmup"]
    del old["data"]["augment"]["hue"]
    old["data"]["batch_size"] = 7
    path = tmp_path / "old.pt"
    torch.save({"format": FORMAT, "version": 1, "config": old, "wandb_run_id": "abc"}, path)
    record = CheckpointRecord.load(path)
    data, trainer, model = (record.config[g] for g in ("data", "trainer", "model"))
    assert (data["rows"], data["layout"], data["batch_size"], data["augment"]["hue"]) == ("all", "csv", 7, 0.0)
    assert (trainer["momentum"], trainer["ema"]["warmup"], model["drop_path_rate"]) == (0.9, True, 0.0)
    assert model["network"] == old["model"]["network"] and record.tracker_run_id == "abc"


@pytest.mark.parametrize(
    ("job", "overrides", "message"),
    [
        ("hybrid.jobs.evaluate:evaluate_files", ["+threshhold=0.3"], "threshhold is not a key of the config; did you mean threshold?"),
        ("hybrid.jobs.evaluate_video:evaluate_video_files", ["distances=5"], "distances=5: expected a list"),
        ("hybrid.jobs.report:run_report", ["sweep_dir=x", "timed_runs=many"], "timed_runs='many': expected an integer"),
        ("hybrid.jobs.benchmark:benchmark", ["models=[x]", "+warmpu=3"], "warmpu is not a key of the config; did you mean warmup?"),
        ("hybrid.jobs.prune:prune", ["ckpt_path=x", "target.flops=big"], "target.flops='big': expected a number"),
        ("hybrid.jobs.export:export", ["ckpt_path=x", "verify.num_images=lots"], "verify.num_images='lots': expected an integer"),
        ("hybrid.jobs.infer:infer", ["ckpt_path=x", "video.fps=fast"], "video.fps='fast': expected a number"),
        ("hybrid.jobs.prepare:prepare", ["+progress=false"], "progress is not a key of the config"),
        ("hybrid.jobs.prepare:prepare", ["prepare.num_shards=few"], "prepare.num_shards='few': expected an integer"),
    ],
)  # fmt: skip
def test_every_job_checks_its_own_keys_before_any_work(job, overrides, message):
    from hybrid.errors import ConfigError

    module, function = job.split(":")
    config_name = {"evaluate_video_files": "evaluate_video", "run_report": "report"}
    name = config_name.get(function, module.rsplit(".", 1)[-1])
    cfg = compose_config(name, overrides=[*overrides, *(["predictions=a", "labels=b"] if "evaluate" in name else [])])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("?", r"\?")):
        getattr(importlib.import_module(module), function)(cfg)
