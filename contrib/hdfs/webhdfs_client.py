"""The WebHDFS client: HDFS over HTTP through the ``hdfs`` package, with no JVM per call.

Several namenode URLs may be given for HA: a standby or unreachable one passes to the next.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from pipes.exceptions import (
    FileAlreadyExists,
    MissingExtra,
    MissingParentDirectory,
    TargetError,
    TargetNotFound,
    TargetUnavailable,
)

from .abstract_client import HdfsFileSystem, hdfs_path
from .config import HdfsConfig, load_config
from .error import classify, with_retries
from .upload import StreamUpload, Upload

try:
    import hdfs
    import requests
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtra(f"pipes.contrib.hdfs needs hdfs ({err}): pip install pipes[hdfs]") from err


class WebHdfsClient(HdfsFileSystem):
    """HDFS through WebHDFS; settings from [hdfs] and [webhdfs] unless given.

    Clients with equal settings compare equal, so targets on one cluster are checked together.
    """

    def __init__(self, config: HdfsConfig | None = None) -> None:
        self.config = config or load_config()
        self._local = threading.local()
        self._pid = 0

    @property
    def client(self) -> hdfs.InsecureClient:
        """The ``hdfs`` package's client for this thread and process (not fork-safe)."""
        if self._pid != os.getpid():
            self._local, self._pid = threading.local(), os.getpid()
        found = getattr(self._local, "client", None)
        if found is None:
            found = self._local.client = hdfs.InsecureClient(
                ";".join(self.config.urls()), user=self.config.user, timeout=self.config.timeout
            )
        return found

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config == self.config

    def __hash__(self) -> int:
        return hash((type(self), self.config))

    def _call[T](self, action: str, path: str, call: Callable[[], T], retry: bool = True) -> T:
        """call() with HDFS errors turned into one-line TargetErrors, transient ones retried.

        ``retry=False`` for calls that consume a stream, which cannot be sent twice.
        """

        def once() -> T:
            try:
                return call()
            except (hdfs.HdfsError, requests.RequestException) as err:
                text = str(err).splitlines()[0] if str(err) else type(err).__name__
                kind = getattr(err, "exception", None) or ""
                if isinstance(err, requests.RequestException):
                    why = "timed out" if isinstance(err, requests.Timeout) else "connection failed"
                    text = f"namenode {', '.join(self.config.urls())} unreachable ({why})"
                    cls: type[TargetError] = TargetUnavailable
                else:
                    cls = classify(f"{kind} {text}")
                raise cls(f"cannot {action} {path}: {text}") from err

        return with_retries(once, self.config.retries if retry else 1, self.config.retry_delay)

    # -- reading the namespace ------------------------------------------------------------

    def status(self, path: str) -> dict[str, Any]:
        return self._call("stat", path, lambda: self.client.status(hdfs_path(path)))

    def _status_or_none(self, path: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call(
            "check", path, lambda: self.client.status(hdfs_path(path), strict=False)
        )
        return found

    def exists(self, path: str) -> bool:
        return self._status_or_none(path) is not None

    def isdir(self, path: str) -> bool:
        found = self._status_or_none(path)
        return found is not None and found["type"] == "DIRECTORY"

    def names_in(self, directory: str) -> set[str] | None:
        try:
            return set(self._call("list", directory, lambda: self.client.list(directory)))
        except TargetNotFound:
            return None

    def listdir(self, path: str, recursive: bool = False) -> Iterator[str]:
        base = hdfs_path(path)
        if not recursive:
            names = self._call("list", path, lambda: self.client.list(base))
            return iter([posixpath.join(base, name) for name in names])
        walked = self._call("list", path, lambda: list(self.client.walk(base)))
        return iter(sorted(posixpath.join(d, f) for d, _, files in walked for f in files))

    def count(self, path: str) -> dict[str, int]:
        """luigi's count: ``content_size``, ``dir_count`` and ``file_count`` under ``path``."""
        found = self._call("count", path, lambda: self.client.content(hdfs_path(path)))
        return {
            "content_size": found["length"],
            "dir_count": found["directoryCount"],
            "file_count": found["fileCount"],
        }

    # -- changing it ----------------------------------------------------------------------

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        found = self._status_or_none(path)
        if found is not None:
            if raise_if_exists or found["type"] != "DIRECTORY":
                raise FileAlreadyExists(f"cannot create directory {path}: it already exists")
            return
        parent = posixpath.dirname(hdfs_path(path).rstrip("/"))
        if not parents and parent and not self.exists(parent):
            raise MissingParentDirectory(
                f"cannot create directory {path}: its parent does not exist (pass parents=True)"
            )
        self._call("create directory", path, lambda: self.client.makedirs(hdfs_path(path)))

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Delete (or move to the user's .Trash when not ``skip_trash``); TargetNotFound if none."""
        target = hdfs_path(path)
        if not skip_trash:
            trash = f"/user/{self.config.user}/.Trash/Current{target}"
            self.mkdir(posixpath.dirname(trash))
            self.move(path, trash)
            return
        done = self._call("remove", path, lambda: self.client.delete(target, recursive=recursive))
        if not done:
            raise TargetNotFound(f"cannot remove {path}: no such file or directory")

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Rename; into ``dst`` when it is a directory, over it when it is a file."""
        found = self._status_or_none(dst)
        if found is not None and raise_if_exists:
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        if found is not None and found["type"] == "FILE":
            self.remove(dst, recursive=False)
        self.mkdir(posixpath.dirname(hdfs_path(dst).rstrip("/")) or "/")
        self._call(
            f"move {src} to", dst, lambda: self.client.rename(hdfs_path(src), hdfs_path(dst))
        )

    def rename_dont_move(self, src: str, dst: str) -> None:
        """Rename unless ``dst`` exists (FileAlreadyExists): never into or over it."""
        if self.exists(dst):
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        self.mkdir(posixpath.dirname(hdfs_path(dst).rstrip("/")) or "/")
        self._call(
            f"move {src} to", dst, lambda: self.client.rename(hdfs_path(src), hdfs_path(dst))
        )

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Copy a file or tree by streaming through this process (WebHDFS has no copy)."""
        if raise_if_exists and self.exists(dst):
            raise FileAlreadyExists(f"cannot copy {src} to {dst}: destination exists")
        if self.isdir(src):
            base = hdfs_path(src).rstrip("/")
            for path in self.listdir(src, recursive=True):
                self.copy(path, hdfs_path(dst).rstrip("/") + path[len(base) :])
            return
        with self.open_read(src) as reader:
            self._call(
                f"copy {src} to",
                dst,
                lambda: self.client.write(hdfs_path(dst), data=reader, overwrite=True),
                retry=False,
            )

    def touchz(self, path: str) -> None:
        """Create an empty file; FileAlreadyExists if something is there."""
        self._call("create", path, lambda: self.client.write(hdfs_path(path), data=b""))

    def chmod(self, path: str, permissions: int | str, recursive: bool = False) -> None:
        """Set permissions (octal, e.g. 755 or '0755') on ``path`` (and below it if recursive)."""
        perm = str(permissions).lstrip("0") or "0"
        paths = [path, *(self.listdir(path, recursive=True) if recursive else [])]
        for item in paths:
            self._call(
                "chmod",
                item,
                lambda i=item: self.client.set_permission(hdfs_path(i), perm),  # type: ignore[misc]
            )

    def chown(
        self, path: str, owner: str | None, group: str | None = None, recursive: bool = False
    ) -> None:
        """Set the owner and/or group of ``path`` (and below it if recursive)."""
        paths = [path, *(self.listdir(path, recursive=True) if recursive else [])]
        for item in paths:
            self._call(
                "chown",
                item,
                lambda i=item: self.client.set_owner(  # type: ignore[misc]
                    hdfs_path(i), owner=owner, group=group
                ),
            )

    # -- data -----------------------------------------------------------------------------

    def put(self, local_path: str, destination: str) -> None:
        with open(local_path, "rb") as reader:
            self.write_file(reader, destination)

    def write_file(self, reader: IO[bytes], destination: str) -> None:
        """Stream an open binary file to a new HDFS file (FileAlreadyExists if one is there)."""
        self._call(
            "write",
            destination,
            lambda: self.client.write(hdfs_path(destination), data=reader, overwrite=False),
            retry=False,
        )

    def open_upload(self, path: str) -> Upload:
        """Stream to a new file while the task writes (WebHDFS CREATE makes the parents)."""

        def send(chunks: Iterator[bytes]) -> None:
            target = hdfs_path(path)
            self._call("write", path, lambda: self.client.write(target, data=chunks), retry=False)

        return StreamUpload(send, path)

    def get(self, path: str, local_path: str) -> None:
        """Download to a local file, atomically (a temporary name, then a rename)."""
        temp = f"{local_path}.pipes-tmp-{os.getpid()}"
        try:
            with self.open_read(path) as reader, open(temp, "wb") as out:
                while chunk := reader.read(1 << 20):
                    out.write(chunk)
            os.replace(temp, local_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)

    def open_read(self, path: str) -> IO[bytes]:
        manager = self.client.read(hdfs_path(path))
        raw = self._call("read", path, manager.__enter__)
        return _Reader(raw, manager, path)  # type: ignore[return-value]  # a BufferedIOBase


class _Reader(io.BufferedIOBase):
    """The HTTP response of an OPEN call as a buffered stream; close() releases the connection.

    Reads go straight to urllib3's response (which buffers), with no second buffer on top.
    """

    def __init__(self, raw: Any, manager: Any, path: str) -> None:
        self._raw = raw
        self._manager = manager
        self._path = path

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(self._raw.read, size)

    def read1(self, size: int = -1) -> bytes:
        return self._guarded(self._raw.read1, size)

    def _guarded(self, read: Callable[[int | None], bytes], size: int | None) -> bytes:
        try:
            return read(None if size is None or size < 0 else size)
        except Exception as err:  # urllib3 protocol or timeout errors mid-stream
            raise TargetUnavailable(f"cannot read {self._path}: {err}") from err

    def close(self) -> None:
        if not self.closed:
            self._manager.__exit__(None, None, None)
        super().close()
