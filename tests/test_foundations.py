"""The bottom layer and the contracts the layers meet at: atomic files, rank-zero logging, typed
config checks, the model contract, one-line errors from inside Hydra's instantiate."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from hybrid.errors import ConfigError, PretrainedWeightsError
from hybrid.models import build_model
from hybrid.models.contract import supports_attention
from hybrid.util import ranks
from hybrid.util.atomic import atomic_write, atomic_write_text
from hybrid.util.logs import RankedLogger
from tests.conftest import compose_config


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = atomic_write_text(tmp_path / "metrics.json", "old")

    def dies_half_way(tmp):
        tmp.write_text("half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, dies_half_way)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def _as_rank(monkeypatch, rank: int, world: int = 2) -> None:
    monkeypatch.setattr(ranks, "rank", lambda: rank)
    monkeypatch.setattr(ranks, "world_size", lambda: world)


def test_ranked_logger_speaks_once_per_job(monkeypatch, caplog):
    log = RankedLogger("hybrid.test_ranked")
    caplog.set_level(logging.INFO, logger="hybrid.test_ranked")
    _as_rank(monkeypatch, 1)
    log.info("from every rank %d", 7)
    log.warning("this rank only", rank_zero_only=False)
    assert [r.getMessage() for r in caplog.records] == ["[rank 1] this rank only"]
    _as_rank(monkeypatch, 0)
    log.info("from every rank %d", 7)
    assert caplog.records[-1].getMessage() == "from every rank 7"


def test_rank_zero_only_runs_on_rank_zero(monkeypatch):
    calls = []
    write = ranks.rank_zero_only(calls.append)
    _as_rank(monkeypatch, 1)
    assert write("x") is None and calls == []
    _as_rank(monkeypatch, 0)
    write("y")
    assert calls == ["y"]


def test_a_part_that_breaks_the_contract_is_refused():
    cfg = compose_config(overrides=["model.encoder._target_=torch.nn.Identity"])
    with pytest.raises(ConfigError, match=r"model\.encoder: Identity does not meet the PatchEncoder contract"):
        build_model(cfg.model, 2)


def test_attention_is_a_capability_asked_for():
    from hybrid.data.labels import resolve_label_spec
    from hybrid.engine.runtime import Runtime
    from hybrid.tracking.media import attention_overlays

    model = build_model(compose_config(overrides=["model.img_size=64", "model.patch_size=16"]).model, 2)
    wrapped = torch.nn.Module()
    wrapped.module = model  # as DistributedDataParallel holds it
    assert supports_attention(model) and supports_attention(wrapped)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    assert not supports_attention(plain)
    spec = resolve_label_spec("binary", None, None)
    assert attention_overlays(plain, loader=None, indices=[0], spec=spec, runtime=Runtime("cpu", "32"), side=8) == []


def test_errors_inside_instantiate_reach_the_user_as_themselves(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cfg = compose_config(overrides=["model.pretrained=true"])
    with pytest.raises(PretrainedWeightsError, match=r"^model.pretrained=true needs resnet18-.*place it at"):
        build_model(OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True)), 2)
