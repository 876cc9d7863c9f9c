"""What every HDFS client shares: path forms, and existence of many paths by listing parents."""

from __future__ import annotations

import posixpath
import re
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pipes.target import FileSystem

from .upload import SpoolUpload, Upload

# Fewer paths than this in one directory are asked one by one: listing a huge directory to
# answer two paths would cost more than it saves.
LIST_THRESHOLD = 4

_URL = re.compile(r"^(?:hdfs|webhdfs|viewfs)://[^/]*")


def hdfs_path(path: str) -> str:
    """The path part of ``hdfs://host:port/path`` (a plain path is returned unchanged)."""
    stripped = _URL.sub("", path)
    return stripped or "/"


class HdfsFileSystem(FileSystem):
    """An HDFS client: subclasses talk to the namenode; this class batches existence checks."""

    @abstractmethod
    def names_in(self, directory: str) -> set[str] | None:
        """Names directly in ``directory`` (one listing), or None if it does not exist."""

    @abstractmethod
    def listdir(self, path: str, recursive: bool = False) -> Iterator[str]:
        """Full paths of the entries in ``path`` (all files below it when ``recursive``)."""

    @abstractmethod
    def open_read(self, path: str) -> IO[bytes]:
        """A stream over the file's bytes."""

    @abstractmethod
    def put(self, local_path: str, destination: str) -> None:
        """Upload a local file to a new HDFS path."""

    @abstractmethod
    def write_file(self, reader: IO[bytes], destination: str) -> None:
        """Stream an open binary file to a new HDFS file (FileAlreadyExists if one is there)."""

    @abstractmethod
    def touchz(self, path: str) -> None:
        """Create an empty file."""

    @abstractmethod
    def status(self, path: str) -> dict[str, Any]:
        """WebHDFS-style FileStatus of ``path`` (``type``, ``length``, ...); TargetNotFound."""

    def open_upload(self, path: str) -> Upload:
        """A stream to a new file at ``path`` that is sent on commit() (spooled locally here)."""
        return SpoolUpload(lambda spool: self.write_file(spool, path))

    def rename(self, path: str, dest: str) -> None:
        """luigi's name for move()."""
        self.move(path, dest)

    def exists_many(self, paths: Iterable[str]) -> dict[str, bool]:
        """exists() for many paths with one listing per parent directory."""
        result: dict[str, bool] = {}
        groups: dict[str, list[tuple[str, str]]] = {}
        for path in paths:
            parent, name = posixpath.split(hdfs_path(path).rstrip("/"))
            if not name:
                result[path] = self.exists(path)
            else:
                groups.setdefault(parent or ".", []).append((path, name))
        for parent, group in groups.items():
            if len(group) < LIST_THRESHOLD:
                result.update((path, self.exists(path)) for path, _ in group)
                continue
            names = self.names_in(parent) or set()
            result.update((path, name in names) for path, name in group)
        return result
