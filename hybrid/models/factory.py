"""Build the hybrid model from its Hydra config and report its size."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybrid.errors import HybridError
from hybrid.models.contract import ClassifierModel, FeatureDecoder, PatchEncoder, check_contract
from hybrid.models.hybrid_model import HybridModel


def instantiate_part(node: DictConfig, **sizes) -> nn.Module:
    """``hydra.utils.instantiate`` of one ``_target_`` block; a :class:`HybridError` raised by the
    target reaches the user as itself (one line), not wrapped in Hydra's "Error in call to target"."""
    try:
        return instantiate(node, **sizes)
    except InstantiationException as err:
        if isinstance(err.__cause__, HybridError):
            raise err.__cause__ from None
        raise


def build_model(model_cfg: DictConfig | Mapping, num_labels: int) -> nn.Module:
    """The model ``model_cfg`` describes, checked against
    :class:`~hybrid.models.contract.ClassifierModel`: a baseline's single ``network`` block, or the
    hybrid's ``encoder`` / ``decoder`` / ``classifier`` blocks (:func:`build_hybrid`)."""
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(dict(model_cfg))
    model = instantiate_part(cfg.network, num_labels=num_labels) if "network" in cfg else build_hybrid(cfg, num_labels)
    check_contract(model, ClassifierModel, "model")
    return model


def build_hybrid(cfg: DictConfig, num_labels: int) -> HybridModel:
    """Instantiate encoder, decoder and classifier (each has a ``_target_``) and check each against
    its contract (:mod:`hybrid.models.contract`).

    Sizes that follow from the architecture (patch count, query count, classifier input) are
    passed here rather than configured, so they can never disagree.
    """
    encoder = instantiate_part(cfg.encoder)
    check_contract(encoder, PatchEncoder, "model.encoder")
    decoder = instantiate_part(
        cfg.decoder, num_patches=encoder.num_patches, grid_size=encoder.grid_size, num_labels=num_labels
    )
    check_contract(decoder, FeatureDecoder, "model.decoder")
    # one query per label (model.num_queries = the label count): each label's logit from its own query
    groups = decoder.num_queries if getattr(decoder, "num_queries", 0) == num_labels > 1 else 1
    classifier = instantiate_part(
        cfg.classifier, in_features=decoder.out_features, num_labels=num_labels, groups=groups
    )
    return HybridModel(encoder, decoder, classifier, num_labels)


def count_trainable(part: nn.Module | nn.Parameter) -> int:
    """Trainable parameters in a module or a single parameter."""
    if isinstance(part, nn.Parameter):
        return part.numel() if part.requires_grad else 0
    return sum(p.numel() for p in part.parameters() if p.requires_grad)


def parameter_report(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per part of the model's ``parameter_groups()`` and ``total``."""
    report = {name: count_trainable(part) for name, part in model.parameter_groups().items()}
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
