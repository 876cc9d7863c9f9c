"""HDFS targets and clients (luigi.contrib.hdfs's names): webhdfs by default, or hadoopcli.

Needs the ``hdfs`` extra for the webhdfs client: ``pip install pipes[hdfs]``.
"""

from .abstract_client import HdfsFileSystem as HdfsFileSystem
from .abstract_client import hdfs_path as hdfs_path
from .clients import get_autoconfig_client as get_autoconfig_client
from .config import HdfsConfig as HdfsConfig
from .config import load_config as load_config
from .target import HdfsFlagTarget as HdfsFlagTarget
from .target import HdfsTarget as HdfsTarget

__all__ = [
    "HdfsConfig",
    "HdfsFileSystem",
    "HdfsFlagTarget",
    "HdfsTarget",
    "get_autoconfig_client",
    "hdfs_path",
    "load_config",
]
