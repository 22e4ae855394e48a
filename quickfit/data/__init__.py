"""Data plumbing shared by every application: DataLoaders, splitting, device transfer, downloads."""

from quickfit.data.core import DataLoaders, random_split, to_device
from quickfit.data.download import DownloadError, download

__all__ = ["DataLoaders", "random_split", "to_device", "download", "DownloadError"]
