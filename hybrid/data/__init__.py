"""Sewer-ML style data: label CSVs, image datasets, transforms, loaders and the synthetic generator."""

from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import DataModule
from hybrid.errors import DataError

__all__ = ["DataError", "DataModule", "LabelSpec"]
