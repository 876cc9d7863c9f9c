"""Choosing the HDFS client named by ``[hdfs] client``: webhdfs (default) or hadoopcli."""

from __future__ import annotations

from .abstract_client import HdfsFileSystem
from .config import load_config


def get_autoconfig_client() -> HdfsFileSystem:
    """The configured client; equal settings give equal clients, so checks are batched."""
    config = load_config()
    if config.client == "hadoopcli":
        from .hadoopcli_clients import HdfsClient

        return HdfsClient(config)
    from .webhdfs_client import WebHdfsClient

    return WebHdfsClient(config)
