"""The hadoopcli client: HDFS through ``hadoop fs`` (FsShell), one JVM per call.

Luigi's default client; some sites only have the ``hadoop`` command. ``[hadoop] command`` names it.
"""

from __future__ import annotations

import io
import posixpath
import subprocess
from collections.abc import Iterator
from typing import IO, Any

from pipes.exceptions import FileAlreadyExists, TargetError, TargetNotFound, TargetUnavailable

from .abstract_client import HdfsFileSystem, hdfs_path
from .config import HdfsConfig, load_config
from .error import classify, with_retries


class HdfsClient(HdfsFileSystem):
    """HDFS through ``hadoop fs``; slow per call, so batch existence checks matter even more."""

    def __init__(self, config: HdfsConfig | None = None) -> None:
        self.config = config or load_config()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config == self.config

    def __hash__(self) -> int:
        return hash((type(self), self.config))

    def call(self, action: str, path: str, *args: str, stdin: IO[bytes] | None = None) -> str:
        """Run ``hadoop fs ARGS``; a failure becomes a one-line TargetError naming ``path``."""
        return self.call_bytes(action, path, *args, stdin=stdin).decode(errors="replace")

    def call_bytes(
        self, action: str, path: str, *args: str, stdin: IO[bytes] | None = None
    ) -> bytes:
        """call(), returning stdout's bytes."""

        def once() -> bytes:
            command = [*self.config.hadoop_command, "fs", *args]
            try:
                done = subprocess.run(
                    command, stdin=stdin, capture_output=True, timeout=self.config.timeout
                )
            except FileNotFoundError as err:
                raise TargetError(
                    f"cannot {action} {path}: {command[0]} not found (set [hadoop] command)"
                ) from err
            except subprocess.TimeoutExpired as err:
                raise TargetUnavailable(
                    f"cannot {action} {path}: hadoop fs timed out after {err.timeout:g} s"
                ) from err
            if done.returncode != 0:
                raise _failure(action, path, done.stderr.decode(errors="replace"))
            return done.stdout

        return with_retries(once, self.config.retries, self.config.retry_delay)

    def exists(self, path: str) -> bool:
        try:
            self.call("check", path, "-stat", path)
        except TargetNotFound:
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return self.call("check", path, "-stat", "%F", path).strip() == "directory"
        except TargetNotFound:
            return False

    def status(self, path: str) -> dict[str, Any]:
        kind, size, mtime = self.call("stat", path, "-stat", "%F|%b|%Y", path).strip().split("|")
        return {
            "type": "DIRECTORY" if kind == "directory" else "FILE",
            "length": int(size),
            "modificationTime": int(mtime),
        }

    def _ls(self, path: str, *flags: str) -> list[str]:
        # Lines are "perms repl owner group size date time path"; "Found N items" is a header.
        return [entry for entry, _ in self._ls_typed(path, *flags)]

    def _ls_typed(self, path: str, *flags: str) -> list[tuple[str, bool]]:
        """(path, is_directory) for each entry of ``hadoop fs -ls``."""
        lines = self.call("list", path, "-ls", *flags, path).splitlines()
        rows = [line.split(None, 7) for line in lines]
        return [(row[7], row[0].startswith("d")) for row in rows if len(row) == 8]

    def names_in(self, directory: str) -> set[str] | None:
        try:
            return {posixpath.basename(hdfs_path(p)) for p in self._ls(directory)}
        except TargetNotFound:
            return None

    def listdir(self, path: str, recursive: bool = False) -> Iterator[str]:
        if not recursive:
            return iter(self._ls(path))
        return iter(sorted(p for p, d in self._ls_typed(path, "-R") if not d))

    def count(self, path: str) -> dict[str, int]:
        """luigi's count: ``content_size``, ``dir_count`` and ``file_count`` under ``path``."""
        dirs, files, size = self.call("count", path, "-count", path).split()[:3]
        return {"content_size": int(size), "dir_count": int(dirs), "file_count": int(files)}

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        if parents and not raise_if_exists:
            self.call("create directory", path, "-mkdir", "-p", path)  # one JVM, idempotent
            return
        if self.exists(path):
            raise FileAlreadyExists(f"cannot create directory {path}: it already exists")
        self.call("create directory", path, "-mkdir", *(["-p"] if parents else []), path)

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        flags = [*(["-r"] if recursive else []), *(["-skipTrash"] if skip_trash else [])]
        self.call("remove", path, "-rm", *flags, path)

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """``hadoop fs -mv``: into ``dst`` when it is a directory, over it when it is a file."""
        if raise_if_exists and self.exists(dst):
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        try:
            self.call(f"move {src} to", dst, "-mv", src, dst)
        except FileAlreadyExists:  # a file is in the way: replace it, as LocalTarget does
            self.remove(dst, recursive=False)
            self.call(f"move {src} to", dst, "-mv", src, dst)

    def rename_dont_move(self, src: str, dst: str) -> None:
        if self.exists(dst):
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        self.mkdir(posixpath.dirname(hdfs_path(dst).rstrip("/")) or "/")
        self.call(f"move {src} to", dst, "-mv", src, dst)

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        if raise_if_exists and self.exists(dst):
            raise FileAlreadyExists(f"cannot copy {src} to {dst}: destination exists")
        self.call(f"copy {src} to", dst, "-cp", "-f", src, dst)

    def put(self, local_path: str, destination: str) -> None:
        self.call("upload to", destination, "-put", local_path, destination)

    def write_file(self, reader: IO[bytes], destination: str) -> None:
        # "-put -" reads stdin: the JVM streams the file without another local copy.
        self.call("write", destination, "-put", "-", destination, stdin=reader)

    def get(self, path: str, local_path: str) -> None:
        self.call("download", path, "-get", path, local_path)

    def touchz(self, path: str) -> None:
        self.call("create", path, "-touchz", path)

    def chmod(self, path: str, permissions: int | str, recursive: bool = False) -> None:
        """Set permissions (octal) on ``path`` (and below it if recursive)."""
        self.call("chmod", path, "-chmod", *(["-R"] if recursive else []), str(permissions), path)

    def chown(
        self, path: str, owner: str | None, group: str | None = None, recursive: bool = False
    ) -> None:
        """Set the owner and/or group of ``path`` (and below it if recursive)."""
        spec = f"{owner or ''}:{group}" if group else owner or ""
        self.call("chown", path, "-chown", *(["-R"] if recursive else []), spec, path)

    def open_read(self, path: str) -> IO[bytes]:
        """``hadoop fs -cat`` read into memory (one JVM; errors surface before any byte)."""
        return io.BytesIO(self.call_bytes("read", path, "-cat", path))


def _failure(action: str, path: str, stderr: str) -> TargetError:
    """The TargetError for a failed ``hadoop fs`` call, from its last meaningful stderr line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("WARN", "log4j", "SLF4J"))]
    last = (useful or lines or ["hadoop fs failed"])[-1][:300]
    return classify(stderr)(f"cannot {action} {path}: {last}")
