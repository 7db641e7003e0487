"""Structured pruning of a trained model to a FLOPs or parameter budget (torch-pruning).

``python -m hybrid.jobs.prune ckpt_path=P method=l1|fpgm target.flops=F | target.params=N | target.like=Q``

Removes whole channels, ranked by their L1 norm (``l1``) or by their distance to the layer's
geometric median (``fpgm``, He et al. 2019), a little at a time until the model's forward FLOPs per
image (as ``hybrid.models.flops_per_image`` counts them) or its parameter count reaches the target;
``target.like`` takes the target from another checkpoint (``target.match``: its FLOPs or its
parameters). The output layer is never pruned. Writes ``pruned.pt``, a checkpoint whose layer sizes
travel with it (``hybrid.models.structure``): ``train.py init_from=pruned.pt`` (with the source's
``model=`` and ``model.img_size``) fine-tunes it, and ``infer.py``, the export and the benchmark
rebuild it. Pruned without fine-tuning, a model's accuracy drops: fine-tune before comparing.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from hybrid.deploy.serving import model_from_record
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.outputs import write_json
from hybrid.errors import ConfigError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import PRUNE_GROUPS, PruneSchema, PruneTargetSchema
from hybrid.models.factory import count_trainable, flops_per_image
from hybrid.models.structure import module_shapes, output_layers
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.typed_config import check_types, typed_job

log = logging.getLogger("hybrid.jobs.prune")  # not __main__ under python -m


TARGETS = ("flops", "params")


def importance(method: str):
    """The channel ranking of ``method``."""
    import torch_pruning as tp

    rankings = {"l1": lambda: tp.importance.MagnitudeImportance(p=1), "fpgm": tp.importance.FPGMImportance}
    if method not in rankings:
        raise ConfigError(f"method={method!r}; choose one of {sorted(rankings)}")
    return rankings[method]()


def cost_of(model: nn.Module, measure: str, img_size: int, in_channels: int) -> float:
    """The model's FLOPs per image or trainable parameters."""
    return flops_per_image(model, img_size, in_channels) if measure == "flops" else count_trainable(model)


def resolve_target(target: PruneTargetSchema) -> tuple[str, float]:
    """``(measure, value)`` from exactly one of ``target.flops``, ``target.params``, ``target.like``."""
    given = [key for key in ("flops", "params", "like") if getattr(target, key) is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of target.flops=F, target.params=N, target.like=<checkpoint>")
    if given[0] != "like":
        return given[0], float(getattr(target, given[0]))
    if target.match not in TARGETS:
        raise ConfigError(f"target.match={target.match!r}; choose one of {list(TARGETS)}")
    like = CheckpointRecord.load(target.like, key="target.like")
    data = like.config["data"]
    reference = model_from_record(like, target.like).eval()
    return target.match, float(cost_of(reference, target.match, int(data["img_size"]), int(data["in_channels"])))


def prune_to(model: nn.Module, method: str, measure: str, target: float, size: int, channels: int, steps: int):
    """Prune ``model`` in place, ``steps`` small steps at most, until its ``measure`` is at or
    below ``target``; return the cost reached."""
    import torch_pruning as tp

    example = torch.randn(1, channels, size, size)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=importance(method),
        pruning_ratio=0.95,
        iterative_steps=steps,
        ignored_layers=list(output_layers(model).values()),
    )
    cost = cost_of(model, measure, size, channels)
    for _ in range(steps):
        if cost <= target:
            break
        pruner.step()
        cost = cost_of(model, measure, size, channels)
    return cost


def prune(cfg: DictConfig) -> dict:
    """Prune ``ckpt_path`` to the target and write ``pruned.pt`` and ``prune.json``."""
    check_types(cfg, PruneSchema, "", resolve=False)  # a typo'd or mistyped key stops here
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python -m hybrid.jobs.prune ckpt_path=<run>/checkpoints/best.pt")
    job = typed_job(cfg, PruneSchema, groups=PRUNE_GROUPS)  # the job's own keys, typed once
    importance(job.method)  # refuse an unknown method before any work
    record = CheckpointRecord.load(job.ckpt_path)
    data = record.config["data"]
    size, channels = int(data["img_size"]), int(data["in_channels"])
    measure, target = resolve_target(job.target)
    model = model_from_record(record, job.ckpt_path).eval()
    before = cost_of(model, measure, size, channels)
    if before <= target:
        raise ConfigError(f"{job.ckpt_path} already has {before:,.0f} {measure}, at or below the target {target:,.0f}")
    log.info("pruning %s (%s) from %s %s to %s", job.ckpt_path, job.method, f"{before:,.0f}", measure, f"{target:,.0f}")
    reached = prune_to(model, job.method, measure, target, size, channels, job.steps)
    folder = Path(job.output).expanduser() if job.output else hydra_run_dir(cfg)
    pruned = dataclasses.replace(
        record,
        model=model.state_dict(),
        structure=module_shapes(model),
        optimizer=None,
        scheduler=None,
        scaler=None,
        rng=None,
        interrupted_epoch=None,
        interrupted_step=None,
        epoch_progress=None,
        tracker_run_id=None,
    )
    path = pruned.save(folder / "pruned.pt")
    report = {
        "source_checkpoint": str(Path(job.ckpt_path).expanduser().resolve()),
        "method": job.method,
        "measure": measure,
        "target": target,
        "before": before,
        "after": reached,
        "relative_error": reached / target - 1,
        "params": count_trainable(model),
        "gflops": flops_per_image(model, size, channels) / 1e9,
        "checkpoint": str(path),
    }
    write_json(folder / "prune.json", report)
    log.info(
        "%s: %s %s (%+.1f%% of the target), %s parameters, %.3f GFLOPs; fine-tune it with train.py init_from=%s",
        path, f"{reached:,.0f}", measure, 100 * report["relative_error"], f"{report['params']:,}", report["gflops"], path,
    )  # fmt: skip
    return report


main = HydraJob("prune", prune)

if __name__ == "__main__":
    sys.exit(main())
