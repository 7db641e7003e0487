"""The shapes of a model's layers, recorded and restored, so a structurally pruned model (fewer
channels in some layers than its config builds) travels inside its checkpoint: building from the
config, then :func:`reshape_modules`, gives the pruned architecture back for its weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

# The layer types whose size pruning changes, and the attributes that state it.
SHAPE_ATTRIBUTES = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.Linear: ("in_features", "out_features"),
    nn.BatchNorm2d: ("num_features",),
    nn.LayerNorm: ("normalized_shape",),
}


def module_shapes(model: nn.Module) -> dict[str, dict]:
    """Per layer of :data:`SHAPE_ATTRIBUTES`'s types: its size attributes (plain ints and lists,
    so a checkpoint holding them still loads with ``weights_only``)."""
    shapes = {}
    for name, module in model.named_modules():
        attributes = next((a for kind, a in SHAPE_ATTRIBUTES.items() if type(module) is kind), None)
        if attributes:
            shapes[name] = {
                a: list(v) if isinstance(v, tuple) else v for a, v in ((a, getattr(module, a)) for a in attributes)
            }
    return shapes


def reshape_modules(model: nn.Module, shapes: Mapping[str, Mapping], state_dict: Mapping[str, torch.Tensor]) -> int:
    """Give the layers of ``model`` the sizes ``shapes`` records, with parameters and buffers of the
    shapes ``state_dict`` holds (their values are loaded afterwards); return how many changed."""
    modules = dict(model.named_modules())
    changed = 0
    for name, attributes in shapes.items():
        module = modules.get(name)
        if module is None:
            continue
        wanted = {a: tuple(v) if isinstance(v, list) else v for a, v in attributes.items()}
        if all(getattr(module, a, None) == v for a, v in wanted.items()):
            continue
        for attribute, value in wanted.items():
            setattr(module, attribute, value)
        for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
            saved = state_dict.get(f"{name}.{key}" if name else key)
            if saved is None or saved.shape == tensor.shape:
                continue
            fresh = torch.empty(saved.shape, dtype=tensor.dtype, device=tensor.device)
            if isinstance(tensor, nn.Parameter):
                setattr(module, key, nn.Parameter(fresh, requires_grad=tensor.requires_grad))
            else:
                module.register_buffer(key, fresh)
        changed += 1
    return changed


def output_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """The layers producing the logits (``Linear`` with ``model.num_labels`` outputs): pruning never
    shrinks them, and a checkpoint of another task does not resize them."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == model.num_labels
    }


def reshape_for_task(model: nn.Module, shapes: Mapping[str, Mapping], state_dict: Mapping[str, torch.Tensor]) -> None:
    """:func:`reshape_modules` for weights of a model trained on another task (``init_from``): the
    output layers keep their number of classes and only take the recorded input size, with fresh
    weights (those of the other task do not fit them)."""
    outputs = output_layers(model)
    reshape_modules(model, {n: a for n, a in shapes.items() if n not in outputs}, state_dict)
    for name, layer in outputs.items():
        inputs = (shapes.get(name) or {}).get("in_features", layer.in_features)
        if inputs != layer.in_features:
            layer.in_features = inputs
            layer.weight = nn.Parameter(torch.empty(layer.out_features, inputs, device=layer.weight.device))
            layer.reset_parameters()
