"""HDFS targets and clients (luigi.contrib.hdfs's names): webhdfs by default, or hadoopcli.

The webhdfs client needs the ``hdfs`` extra (``pip install pipes[hdfs]``); it is imported only
when used, so the hadoopcli client works without it.
"""

from typing import Any

from .abstract_client import HdfsFileSystem as HdfsFileSystem
from .abstract_client import hdfs_path as hdfs_path
from .clients import get_autoconfig_client as get_autoconfig_client
from .config import HdfsConfig as HdfsConfig
from .config import load_config as load_config
from .hadoopcli_clients import HdfsClient as HdfsClient
from .target import HdfsFlagTarget as HdfsFlagTarget
from .target import HdfsTarget as HdfsTarget

__all__ = [
    "HdfsClient",
    "HdfsConfig",
    "HdfsFileSystem",
    "HdfsFlagTarget",
    "HdfsTarget",
    "WebHdfsClient",
    "get_autoconfig_client",
    "hdfs_path",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # WebHdfsClient pulls in the optional `hdfs` package: import it on first use only.
    if name == "WebHdfsClient":
        from .webhdfs_client import WebHdfsClient

        return WebHdfsClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
