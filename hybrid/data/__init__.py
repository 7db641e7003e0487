"""Sewer-ML style data: label CSVs, image datasets, transforms, the batch path to the model's device
(:class:`DeviceLoader`), loaders and the synthetic generator."""

from hybrid.data.device_loader import DeviceLoader
from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import DataModule, make_loader
from hybrid.errors import DataError

__all__ = ["DataError", "DataModule", "DeviceLoader", "LabelSpec", "make_loader"]
