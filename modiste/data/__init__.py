"""Datasets: the format, validation, the synthetic world and its oracle."""

from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError

__all__ = ["Dataset", "DatasetError"]
