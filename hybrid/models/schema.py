"""The ``model`` config group: a typed schema and the checks run before any work, per architecture
(``model.name``). Each rule lives with the part that applies it when built (the patch grid in the
encoder, heads and position codes in the decoder, backbones and weights in the backbone registry);
this module only calls them, so a bad value is refused before data or a model is built."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hybrid.errors import ConfigError
from hybrid.models.backbones import check_backbone, check_in_channels, pretrained_weights_file
from hybrid.models.baselines import TIMM_ARCHITECTURES, TimmClassifier, Xie2019, check_local_weights, check_timm_input
from hybrid.models.classifier import Classifier
from hybrid.models.decoder import CatsDecoder, check_decoder
from hybrid.models.encoder import PatchConvEncoder, patch_grid
from hybrid.util.typed_config import check_types, register_schema


def floordiv(numerator, denominator) -> int:
    """``${floordiv:a,b}``: ``a // b`` (the hybrid's patch side from its input side and grid)."""
    return int(numerator) // int(denominator)


# Registered on import: every entry point builds models, so every composed config can resolve it.
OmegaConf.register_new_resolver("floordiv", floordiv, replace=True)


# The arguments the factory passes itself (sizes that follow from the architecture), never configured.
BUILT_SIZES = ("num_patches", "grid_size", "num_labels", "in_features", "groups")


def configured_arguments(target: type) -> dict[str, str]:
    """``{argument: model key}`` for every argument of ``target``'s constructor the config gives."""
    renamed = CONFIGURED[target].renamed
    names = [name for name in inspect.signature(target).parameters if name not in BUILT_SIZES]
    return {name: renamed.get(name, name) for name in names}


def target_block(target: type) -> dict:
    """The ``_target_`` block that builds ``target`` from its schema's keys: each configured
    argument linked to its key (``img_size: ${..img_size}``), so the composed config shows what
    the part is built with and an override of the key reaches it."""
    return {"_target_": public_path(target),
            **{name: f"${{..{key}}}" for name, key in configured_arguments(target).items()}}  # fmt: skip


def public_path(target: type) -> str:
    """``hybrid.models.<Name>`` for a class the package exports (the hybrid's parts), else its
    module's path (``hybrid.models.baselines.Xie2019``)."""
    package = importlib.import_module("hybrid.models")
    exported = getattr(package, target.__qualname__, None) is target
    return f"hybrid.models.{target.__qualname__}" if exported else f"{target.__module__}.{target.__qualname__}"


@dataclass
class CatsHybridSchema:
    """The ``model`` keys of ``model=cats_hybrid``, the seed's architecture (``pretrained``: a bool
    or a path). ``conf/model/cats_hybrid.yaml`` wires them into the blocks the factory builds."""

    name: str = "cats_hybrid"
    img_size: int = 480
    grid_size: int = 4  # patches per side: patch_size follows img_size (480 -> 120, 224 -> 56, 64 -> 16)
    patch_size: int = "${floordiv:${.img_size},${.grid_size}}"  # type: ignore[assignment]  # or set it: model.patch_size=60
    patch_stride: int | None = None  # null: non-overlapping patches (stride = patch_size)
    in_channels: int = 3  # 3 (RGB) or 1 (first conv averaged over RGB)
    backbone: str = "resnet18_layer1"  # see hybrid.models.backbones.BACKBONES
    pretrained: Any = False  # false, true (torchvision weights in the local torch cache) or a path
    featured_patch_dim: int = 32
    emb_dim: int = 24
    num_heads: int = 2
    num_layers: int = 1
    ffn_ratio: float = 4.0  # GEGLU hidden size = emb_dim * ffn_ratio
    positional_encoding: str = "learnable"  # learnable | sincos2d | none
    residual_attention: bool = False
    qam_start: float = 0.1  # query-adaptive masking: drop rate of the first query ...
    qam_end: float = 0.5  # ... rising linearly to the last query (training only)
    query_init_std: float = 0.02  # small, so the shared query does not drown the attended patches
    # learned (the seed) | attention_pooling (queries pooled from the patches, no extra weights)
    query_init: str = "learned"
    # null: the seed's ceil(num_labels / featured_patch_dim); the label count (e.g. 17): one query
    # per label
    num_queries: int | None = None
    dropout: float = 0.1
    attn_dropout: float = 0.0
    classifier_dropout: float = 0.1
    # the _target_ blocks the factory instantiates, generated from the constructors (target_block)
    encoder: Any = field(default_factory=lambda: target_block(PatchConvEncoder))
    decoder: Any = field(default_factory=lambda: target_block(CatsDecoder))
    classifier: Any = field(default_factory=lambda: target_block(Classifier))


def check_cats_hybrid(model: DictConfig) -> None:
    """Architecture values of the CNN-Transformer hybrid that cannot work together."""
    patch_grid(int(model.img_size), int(model.patch_size), model.patch_stride)
    check_decoder(
        model.emb_dim,
        model.num_heads,
        model.num_layers,
        model.positional_encoding,
        model.qam_start,
        model.qam_end,
        model.query_init,
    )
    check_backbone(model.backbone, model.in_channels)
    pretrained_weights_file(model.backbone, model.pretrained)
    if model.num_queries is not None and int(model.num_queries) < 1:
        raise ConfigError(f"model.num_queries={model.num_queries}: at least 1 (or null for the seed's rule)")


@dataclass
class TimmSchema:
    """The ``model`` keys of a timm baseline (``model=resnet18`` and friends; ``name`` is timm's)."""

    name: str = "???"
    img_size: int = 480  # the hybrid's default, so a sweep over model= compares at one input size
    in_channels: int = 3  # 3 (RGB) or 1 (timm adapts the first convolution)
    pretrained: Any = False  # false, or a local weights file (.safetensors / .pth); nothing is downloaded
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth: residual branches dropped at this rate (timm's)
    # the _target_ block the factory instantiates: every timm baseline is built the same way
    network: Any = field(default_factory=lambda: target_block(TimmClassifier))


def check_timm(model: DictConfig) -> None:
    """Input size and channels the network takes, and weights from a local file only."""
    check_timm_input(model.name, model.img_size, model.in_channels)
    check_local_weights(model.pretrained)


@dataclass
class Xie2019Schema:
    """The ``model`` keys of ``model=xie2019``."""

    name: str = "xie2019"
    img_size: int = 480  # the hybrid's default, so a sweep over model= compares at one input size
    in_channels: int = 3
    dropout: float = 0.6
    network: Any = field(default_factory=lambda: target_block(Xie2019))  # the _target_ block the factory instantiates


def check_xie2019(model: DictConfig) -> None:
    """Three stride-4 stages need 32 px at least; RGB or grayscale."""
    if int(model.img_size) < 32:
        raise ConfigError(f"model.img_size={model.img_size}: xie2019 needs at least 32 px")
    check_in_channels(model.in_channels)


@dataclass(frozen=True)
class ConfiguredBy:
    """Which schema's keys a model part's constructor takes (``renamed``: argument -> key, where
    the names differ)."""

    schema: type
    renamed: dict[str, str] = field(default_factory=dict)


# Each config-driven constructor and the schema whose keys it takes: every other argument is one of
# BUILT_SIZES. Constructors declare no defaults for these (the schema's are the only ones;
# tests/test_models.py checks it), and their _target_ blocks are generated, so a new hyperparameter
# is one field in the schema and one argument where it is used.
CONFIGURED: dict[type, ConfiguredBy] = {
    PatchConvEncoder: ConfiguredBy(CatsHybridSchema),
    CatsDecoder: ConfiguredBy(CatsHybridSchema),
    Classifier: ConfiguredBy(CatsHybridSchema, {"dropout": "classifier_dropout"}),
    TimmClassifier: ConfiguredBy(TimmSchema, {"architecture": "name"}),
    Xie2019: ConfiguredBy(Xie2019Schema),
}


def default_arguments(target: type, **given) -> dict:
    """``target``'s configured arguments at its schema's defaults (resolved), ``given`` replacing
    some: how code outside a config (a notebook, a test) builds one part as the config would."""
    defaults = OmegaConf.to_container(OmegaConf.structured(CONFIGURED[target].schema), resolve=True)
    return {name: defaults[key] for name, key in configured_arguments(target).items()} | given


# model.name -> (typed schema, architecture checks); a new architecture registers its own.
ARCHITECTURES: dict[str, tuple[type, Callable[[DictConfig], None]]] = {
    "cats_hybrid": (CatsHybridSchema, check_cats_hybrid),
    "xie2019": (Xie2019Schema, check_xie2019),
    **{name: (TimmSchema, check_timm) for name in TIMM_ARCHITECTURES},
}
# The bases conf/model/*.yaml extend (/schema/model/<name>@_here_).
register_schema("model/cats_hybrid", CatsHybridSchema)
register_schema("model/timm", TimmSchema)
register_schema("model/xie2019", Xie2019Schema)


def model_tag(model: DictConfig) -> str:
    """How a tracker's tags name ``model``: the hybrid by its backbone, any other by its name."""
    return str(model.backbone if "backbone" in model else model.name)


def model_schema(name: str) -> type:
    """The schema of architecture ``name`` (``model.name``)."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"model.name={name!r} is unknown; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name][0]


def check_model_config(model: DictConfig) -> None:
    """The types and rules of the ``model`` group's architecture."""
    check_types(model, model_schema(model.name), "model")
    ARCHITECTURES[model.name][1](model)
