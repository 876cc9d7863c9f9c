"""Choosing the HDFS client named by ``[hdfs] client``: webhdfs (default) or hadoopcli."""

from __future__ import annotations

from .abstract_client import HdfsFileSystem
from .config import HdfsConfig, load_config

_CLIENTS: dict[HdfsConfig, HdfsFileSystem] = {}


def get_autoconfig_client() -> HdfsFileSystem:
    """The configured client, one per distinct settings, so connections and checks are shared."""
    config = load_config()
    found = _CLIENTS.get(config)
    if found is None:
        found = _CLIENTS[config] = _make(config)
    return found


def _make(config: HdfsConfig) -> HdfsFileSystem:
    if config.client == "hadoopcli":
        from .hadoopcli_clients import HdfsClient

        return HdfsClient(config)
    from .webhdfs_client import WebHdfsClient

    return WebHdfsClient(config)
