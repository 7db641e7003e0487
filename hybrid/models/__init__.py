"""The CNN-Transformer hybrid: patch encoder, CATS decoder, classifier."""

from hybrid.models.backbones import BACKBONES, available_backbones, build_backbone
from hybrid.models.classifier import Classifier
from hybrid.models.contract import AttentionMaps, ClassifierModel, supports_attention
from hybrid.models.decoder import CatsDecoder
from hybrid.models.encoder import PatchConvEncoder
from hybrid.models.factory import build_model, flops_per_image, format_parameter_report, parameter_report
from hybrid.models.hybrid_model import HybridModel

__all__ = [
    "BACKBONES",
    "AttentionMaps",
    "CatsDecoder",
    "Classifier",
    "ClassifierModel",
    "HybridModel",
    "PatchConvEncoder",
    "available_backbones",
    "build_backbone",
    "build_model",
    "flops_per_image",
    "format_parameter_report",
    "parameter_report",
    "supports_attention",
]

# Last: registers the model schemas (whose _target_ blocks name the classes exported above) and the
# configs' ${floordiv:...} resolver.
from hybrid.models import schema  # noqa: F401
