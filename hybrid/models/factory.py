"""Build the hybrid model from its Hydra config and report its size."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybrid.models.hybrid_model import HybridModel


def build_model(model_cfg: DictConfig | Mapping, num_labels: int) -> HybridModel:
    """Instantiate encoder, decoder and classifier from ``model_cfg`` (each has a ``_target_``).

    Sizes that follow from the architecture (patch count, query count, classifier input) are
    passed here rather than configured, so they can never disagree.
    """
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    encoder = instantiate(cfg.encoder)
    decoder = instantiate(
        cfg.decoder,
        num_patches=encoder.num_patches,
        grid_size=encoder.grid_size,
        num_labels=num_labels,
    )
    classifier = instantiate(cfg.classifier, in_features=decoder.out_features, num_labels=num_labels)
    return HybridModel(encoder, decoder, classifier)


def count_trainable(part: nn.Module | nn.Parameter) -> int:
    """Trainable parameters in a module or a single parameter."""
    if isinstance(part, nn.Parameter):
        return part.numel() if part.requires_grad else 0
    return sum(p.numel() for p in part.parameters() if p.requires_grad)


def parameter_report(model: HybridModel) -> dict[str, int]:
    """Trainable parameters per part, keyed ``encoder/cnn`` ... ``classifier`` and ``total``."""
    report: dict[str, int] = {}
    for name in ("encoder", "decoder"):
        part = getattr(model, name)
        for group, module in part.parameter_groups().items():
            report[f"{name}/{group}"] = count_trainable(module)
        report[name] = count_trainable(part)
    report["classifier"] = count_trainable(model.classifier)
    report["total"] = count_trainable(model)
    return report


def format_parameter_report(report: Mapping[str, int]) -> str:
    """A small aligned table for the log."""
    width = max(len(k) for k in report)
    lines = ["trainable parameters:"]
    lines += [f"  {name:<{width}}  {count:>12,}" for name, count in report.items()]
    return "\n".join(lines)


@torch.no_grad()
def flops_per_image(model: nn.Module, img_size: int, in_channels: int) -> int:
    """Floating-point operations of one forward pass on one image (eval mode, counted by
    :mod:`torch.utils.flop_counter`; a multiply-add counts as 2)."""
    parameter = next(model.parameters())
    image = torch.zeros(1, in_channels, img_size, img_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(image)
    model.train(was_training)
    return int(counter.get_total_flops())
