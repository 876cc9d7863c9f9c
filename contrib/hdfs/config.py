"""HDFS settings from the [hdfs], [webhdfs] and [hadoop] config sections, with luigi's keys."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from pipes.config import get_config
from pipes.exceptions import ConfigError


@dataclass(frozen=True)
class HdfsConfig:
    """Everything a client needs; frozen so equal settings give equal (and shared) clients."""

    client: str = "webhdfs"
    namenode_hosts: tuple[str, ...] = ("localhost",)
    namenode_port: int = 8020
    webhdfs_port: int = 50070
    webhdfs_urls: tuple[str, ...] = ()
    user: str = ""
    tmp_dir: str = "/tmp"
    hadoop_command: tuple[str, ...] = ("hadoop",)
    timeout: float = 60.0
    retries: int = 3
    retry_delay: float = 0.5

    def urls(self) -> list[str]:
        """WebHDFS base URLs to try in order: a standby or unreachable one passes to the next."""
        if self.webhdfs_urls:
            return list(self.webhdfs_urls)
        return [f"http://{host}:{self.webhdfs_port}" for host in self.namenode_hosts]


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())


def _number(section: str, option: str, default: float) -> float:
    value = get_config().get(section, option)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"[{section}] {option} must be a number, not {value!r}") from None


def load_config() -> HdfsConfig:
    """Read the sections now (config may be reloaded between runs)."""
    config = get_config()
    client = (config.get("hdfs", "client") or "webhdfs").strip().lower()
    if client not in ("webhdfs", "hadoopcli"):
        raise ConfigError(f"[hdfs] client must be webhdfs or hadoopcli, not {client!r}")
    user = config.get("hdfs", "user") or os.environ.get("HADOOP_USER_NAME") or getpass.getuser()
    return HdfsConfig(
        client=client,
        namenode_hosts=_split(config.get("hdfs", "namenode_host") or "localhost"),
        namenode_port=int(_number("hdfs", "namenode_port", 8020)),
        webhdfs_port=int(_number("webhdfs", "port", 50070)),
        webhdfs_urls=_split(config.get("webhdfs", "urls") or ""),
        user=user,
        tmp_dir=config.get("hdfs", "tmp_dir") or "/tmp",
        hadoop_command=tuple((config.get("hadoop", "command") or "hadoop").split()),
        timeout=_number("hdfs", "timeout", 60.0),
        retries=int(_number("hdfs", "retries", 3)),
        retry_delay=_number("hdfs", "retry_delay", 0.5),
    )
