"""HdfsTarget and HdfsFlagTarget: files and directories in HDFS, written atomically by rename."""

from __future__ import annotations

import io
import logging
import posixpath
import secrets
from typing import IO, TYPE_CHECKING, Any

from pipes.exceptions import TargetError, TargetNotFound
from pipes.target import AtomicSink, FileSystemTarget, open_formatted, temp_path_beside

from .abstract_client import HdfsFileSystem, hdfs_path
from .clients import get_autoconfig_client
from .config import load_config
from .upload import Upload

logger = logging.getLogger("pipes.contrib.hdfs")

if TYPE_CHECKING:
    from pipes.format import Format


class _HdfsSink(AtomicSink):
    """An upload to a temporary path beside the final one, renamed into place on publish."""

    def __init__(self, fs: HdfsFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path
        self.tmp_path = temp_path_beside(hdfs_path(path))
        self._upload: Upload | None = None

    def open(self) -> IO[bytes]:
        self._upload = self.fs.open_upload(self.tmp_path)
        # Large chunks: the format layers above write in pieces of a few KB.
        return io.BufferedWriter(self._upload, buffer_size=1 << 20)

    def publish(self) -> None:
        assert self._upload is not None
        self._upload.commit()
        # Replace an existing file, as LocalTarget does; the new content appears in one rename.
        self.fs.move(self.tmp_path, self.path)

    def discard(self) -> None:
        if self._upload is None:
            return
        self._upload.abort()
        if not self._upload.started:
            return
        try:  # a streamed or failed upload may have left the temporary file
            self.fs.remove(self.tmp_path)
        except TargetNotFound:
            return
        except TargetError as err:  # keep the task's own error; this one only goes to the log
            logger.warning("could not remove the temporary %s: %s", self.tmp_path, err)


class HdfsTarget(FileSystemTarget):
    """A file or directory in HDFS (``/path`` or ``hdfs://host:port/path``).

    Writes go to a temporary path in the same directory and are renamed into place on a clean
    close only; a directory output is published by one rename through ``temporary_path()``.
    """

    def __init__(
        self,
        path: str | None = None,
        format: Format | None = None,  # luigi's name, kept for porting
        is_tmp: bool = False,
        fs: HdfsFileSystem | None = None,
    ) -> None:
        if path is None:
            if not is_tmp:
                raise TargetError("HdfsTarget needs a path, or is_tmp=True for a temporary one")
            path = posixpath.join(load_config().tmp_dir, f"pipes-tmp-{secrets.token_hex(8)}")
        super().__init__(path)
        self.format = format
        self.is_tmp = is_tmp
        self._fs = fs

    @property
    def fs(self) -> HdfsFileSystem:
        if self._fs is None:
            self._fs = get_autoconfig_client()
        return self._fs

    def open(self, mode: str = "r") -> IO[Any]:
        """Stream the file, or write it atomically (temporary path beside it, renamed on close)."""
        return open_formatted(
            mode,
            self.format,
            lambda: self.fs.open_read(self.path),
            lambda: _HdfsSink(self.fs, self.path),
        )

    def move(self, path: str, raise_if_exists: bool = False) -> None:
        """Move the data to ``path``; this target keeps pointing at the old path."""
        self.fs.move(self.path, path, raise_if_exists=raise_if_exists)

    def copy(self, dst_dir: str) -> None:
        """Copy the data to ``dst_dir``."""
        self.fs.copy(self.path, dst_dir)

    def is_writable(self) -> bool:
        """Whether a temporary file can be created beside the target (luigi's check)."""
        probe = temp_path_beside(hdfs_path(self.path))
        try:
            self.fs.mkdir(posixpath.dirname(probe) or "/")
            self.fs.touchz(probe)
            self.fs.remove(probe)
        except TargetError:
            return False
        return True


class HdfsFlagTarget(HdfsTarget):
    """A directory that is complete when its flag file (``_SUCCESS``) exists.

    Differs from luigi: a path without a trailing slash is accepted and gets one.
    """

    def __init__(
        self,
        path: str,
        format: Format | None = None,
        client: HdfsFileSystem | None = None,
        flag: str = "_SUCCESS",
    ) -> None:
        super().__init__(path.rstrip("/") + "/", format=format, fs=client)
        self.flag = flag

    def exists(self) -> bool:
        return self.fs.exists(self.path + self.flag)
