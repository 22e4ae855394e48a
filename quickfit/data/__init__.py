"""Data plumbing shared by every application: batches, sharding, splitting, column checks, downloads."""

from quickfit.data.batches import TensorBatches
from quickfit.data.core import DataLoaders, random_split, to_device
from quickfit.data.download import DownloadError, download
from quickfit.data.loader import LoaderBase, ShardSampler
from quickfit.data.split import ColumnError, check_columns, split_rows

__all__ = [
    "DataLoaders",
    "TensorBatches",
    "LoaderBase",
    "ShardSampler",
    "random_split",
    "split_rows",
    "check_columns",
    "ColumnError",
    "to_device",
    "download",
    "DownloadError",
]
