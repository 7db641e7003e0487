"""Sewer-ML style data: label CSVs, image datasets, transforms, loaders and the synthetic generator."""

from hybrid.data.labels import LabelSpec
from hybrid.errors import DataError
from hybrid.data.loaders import DataModule

__all__ = ["DataError", "DataModule", "LabelSpec"]
