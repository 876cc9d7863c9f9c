"""In-memory targets for users' unit tests: MockFileSystem and MockTarget.

All instances share one process-wide dict of path -> bytes. Differs from luigi: it is not
shared with worker processes, so run tasks in-process when their outputs are MockTargets.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, ClassVar

from pipes.exceptions import FileAlreadyExists, NotADirectory, TargetError
from pipes.target import AtomicSink, FileSystem, FileSystemTarget, open_formatted

if TYPE_CHECKING:
    from pipes.format import Format


def _prefix(path: str) -> str:
    return path.rstrip("/") + "/"


class MockFileSystem(FileSystem):
    """A flat in-memory store; a directory exists while some path lies under it."""

    _data: ClassVar[dict[str, bytes]] = {}
    _lock: ClassVar[threading.RLock] = threading.RLock()

    def get_all_data(self) -> dict[str, bytes]:
        """The live dict of every stored path and its bytes."""
        return self._data

    def get_data(self, fn: str) -> bytes:
        """The bytes stored at one path; KeyError if nothing is."""
        with self._lock:
            return self._data[fn]

    def clear(self) -> None:
        """Forget every stored path; call it between tests."""
        with self._lock:
            self._data.clear()

    def exists(self, path: str) -> bool:
        with self._lock:
            return path in self._data or self.isdir(path)

    def isdir(self, path: str) -> bool:
        prefix = _prefix(path)
        with self._lock:
            return any(key.startswith(prefix) for key in self._data)

    def exists_many(self, paths: Iterable[str]) -> dict[str, bool]:
        """exists() for many paths with one pass over the store, not one per path."""
        with self._lock:
            keys = set(self._data)
            dirs = {key[:i] for key in keys for i, char in enumerate(key) if char == "/" and i}
        return {path: path in keys or path.rstrip("/") in dirs for path in paths}

    def _under(self, path: str) -> list[str]:
        prefix = _prefix(path)
        return sorted(key for key in self._data if key.startswith(prefix))

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        with self._lock:
            if path in self._data:
                del self._data[path]
                return
            children = self._under(path)
            if not children:
                raise TargetError(f"cannot remove {path}: no such file or directory")
            if not recursive:
                raise TargetError(f"cannot remove {path}: a non-empty directory (recursive=False)")
            for key in children:
                del self._data[key]

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """A no-op but for its errors: directories here exist only through their files."""
        with self._lock:
            if path in self._data:
                raise NotADirectory(f"cannot create directory {path}: a file is in the way")
            if raise_if_exists and self.isdir(path):
                raise FileAlreadyExists(f"cannot create directory {path}: it already exists")

    def listdir(self, path: str) -> Iterator[str]:
        with self._lock:
            if path in self._data:
                raise NotADirectory(f"cannot list {path}: not a directory")
            return iter(self._under(path))

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        self._transfer(src, dst, raise_if_exists, keep_source=False)

    def rename(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Same as move(), under Luigi's other name for it."""
        self.move(src, dst, raise_if_exists=raise_if_exists)

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        self._transfer(src, dst, raise_if_exists, keep_source=True)

    def rename_dont_move(self, src: str, dst: str) -> None:
        """Atomic here: the check and the move happen under one lock."""
        self._transfer(src, dst, raise_if_exists=True, keep_source=False)

    def _transfer(self, src: str, dst: str, raise_if_exists: bool, keep_source: bool) -> None:
        verb = "copy" if keep_source else "move"
        with self._lock:
            if raise_if_exists and self.exists(dst):
                raise FileAlreadyExists(f"cannot {verb} {src} to {dst}: destination exists")
            if src in self._data:
                pairs = [(src, dst)]
            else:
                pairs = [(key, _prefix(dst) + key[len(_prefix(src)) :]) for key in self._under(src)]
            if not pairs:
                raise TargetError(f"cannot {verb} {src} to {dst}: no such file or directory")
            moved = {new: self._data[old] for old, new in pairs}
            if not keep_source:
                for old, _ in pairs:
                    del self._data[old]
            self._data.update(moved)

    def _put(self, path: str, data: bytes) -> None:
        with self._lock:
            self._data[path] = data


_FS = MockFileSystem()


class _MockBuffer(io.BytesIO):
    """Bytes being written; hands its value to ``on_close`` before the buffer is freed."""

    def __init__(self, on_close: Callable[[bytes], None], mirror: Callable[[bytes], None]) -> None:
        super().__init__()
        self._on_close = on_close
        self._mirror = mirror

    def write(self, data: Any) -> int:
        self._mirror(bytes(data))
        return super().write(data)

    def close(self) -> None:
        if not self.closed:
            self._on_close(self.getvalue())
        super().close()


class _MockSink(AtomicSink):
    """Holds written bytes aside; publish() stores them at the path in one step."""

    def __init__(self, path: str, mirror_on_stderr: bool) -> None:
        self.path = path
        self.mirror_on_stderr = mirror_on_stderr
        self._value: bytes | None = None

    def open(self) -> IO[bytes]:
        return _MockBuffer(self._keep, self._mirror)

    def _keep(self, value: bytes) -> None:
        self._value = value

    def _mirror(self, data: bytes) -> None:
        if self.mirror_on_stderr:
            sys.stderr.write(f"{self.path}: {data.decode('utf-8', 'replace')}")

    def publish(self) -> None:
        if self._value is None:
            raise TargetError(f"cannot publish {self.path}: the stream was not closed")
        _FS._put(self.path, self._value)

    def discard(self) -> None:
        self._value = None


class MockTarget(FileSystemTarget):
    """An in-memory file for tests; written atomically (visible only after a clean close).

    `MockTarget.fs` is the one process-wide MockFileSystem, on the class as in Luigi.
    """

    fs: ClassVar[MockFileSystem] = _FS

    def __init__(
        self,
        fn: str | os.PathLike[str] | None = None,
        is_tmp: bool = False,
        mirror_on_stderr: bool = False,
        format: Format | None = None,  # luigi's name, kept for porting
    ) -> None:
        if fn is None:
            if not is_tmp:
                raise TargetError("MockTarget needs a name, or is_tmp=True for a temporary one")
            fn = f"pipes-mock-tmp-{secrets.token_hex(8)}"
        super().__init__(fn)
        self.is_tmp = is_tmp
        self.mirror_on_stderr = mirror_on_stderr
        self.format = format

    def open(self, mode: str = "r") -> IO[Any]:
        return open_formatted(mode, self.format, self._open_raw, self._make_sink)

    def _open_raw(self) -> IO[bytes]:
        data = self.fs.get_all_data().get(self.path)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "no such mock file", self.path)
        return io.BytesIO(data)

    def _make_sink(self) -> AtomicSink:
        return _MockSink(self.path, self.mirror_on_stderr)

    def move(self, path: str, raise_if_exists: bool = False) -> None:
        """Move the data to ``path``; this target keeps pointing at the old name."""
        self.fs.move(self.path, path, raise_if_exists=raise_if_exists)

    def rename(self, path: str, raise_if_exists: bool = False) -> None:
        """Same as move(), under luigi's other name for it."""
        self.move(path, raise_if_exists=raise_if_exists)
