"""Targets in the abstract: what a task produces, where it lives, and how it is written atomically.

Concrete stores (local disk, the in-memory mock, HDFS, S3) subclass FileSystem and
FileSystemTarget, and get atomic writes by handing an AtomicSink to ``open_formatted``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from pipes.exceptions import FileAlreadyExists as FileAlreadyExists
from pipes.exceptions import MissingParentDirectory as MissingParentDirectory
from pipes.exceptions import NotADirectory as NotADirectory
from pipes.exceptions import TargetError
from pipes.format import resolve_format

if TYPE_CHECKING:
    from types import TracebackType

    from pipes.format import Format

TEMP_MARKER = "-pipes-tmp-"

# Luigi's name for the root of filesystem errors; in pipes, every target error's root.
FileSystemException = TargetError


class Target(ABC):
    """Something a task produces; a task is complete when all its targets exist."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the target is there; must not create or change anything."""


class FileSystem(ABC):
    """Operations on one kind of store, addressed by path strings."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file or directory is at ``path``."""

    @abstractmethod
    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove the file or directory at ``path``; raises TargetError if there is none."""

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Create a directory; FileAlreadyExists only when ``raise_if_exists`` is set."""
        raise self._unsupported("mkdir")

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is a directory."""
        raise self._unsupported("isdir")

    def listdir(self, path: str) -> Iterator[str]:
        """Full paths of the files under the directory ``path``, recursively."""
        raise self._unsupported("listdir")

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Move ``src`` to ``dst``, replacing it unless ``raise_if_exists`` is set."""
        raise self._unsupported("move")

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Copy ``src`` to ``dst``, replacing it unless ``raise_if_exists`` is set."""
        raise self._unsupported("copy")

    def rename_dont_move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` but never overwrite: FileAlreadyExists if ``dst`` exists.

        This default checks then moves; stores that can do it atomically override it.
        """
        if self.exists(dst):
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        self.move(src, dst, raise_if_exists=True)

    def exists_many(self, paths: Iterable[str]) -> dict[str, bool]:
        """exists() for many paths at once; stores override it to answer a directory per listing."""
        return {path: self.exists(path) for path in paths}

    def _unsupported(self, operation: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not support {operation}")


class _TempNames:
    """Names no other process picks: a random prefix per process, then a counter.

    One getrandom() per process instead of one per write; a forked child draws its own
    prefix, since it would otherwise repeat its parent's names.
    """

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = os.urandom(6).hex()  # what secrets.token_hex does, without its imports
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter)}"


_TEMP_NAMES = _TempNames()


def temp_path_beside(path: str) -> str:
    """A fresh temporary name in the same directory as ``path``, so a rename into place is cheap."""
    stripped = path.rstrip("/")
    slash = "/" if stripped != path else ""
    return f"{stripped}{TEMP_MARKER}{_TEMP_NAMES.next()}{slash}"


_MODES = {
    "r": (False, False),
    "rt": (False, False),
    "rb": (False, True),
    "w": (True, False),
    "wt": (True, False),
    "wb": (True, True),
}


def parse_mode(mode: str) -> tuple[bool, bool]:
    """(writing, binary) for 'r', 'w', 'rb', 'wb' (or 'rt', 'wt'); TargetError otherwise."""
    try:
        return _MODES[mode]
    except KeyError:
        raise TargetError(f"unsupported mode {mode!r}: use 'r', 'w', 'rb' or 'wb'") from None


class AtomicSink(ABC):
    """Where an atomic write's bytes wait before publish() makes them visible at the final path."""

    @abstractmethod
    def open(self) -> IO[bytes]:
        """Open the temporary destination; closing it must not publish."""

    @abstractmethod
    def publish(self) -> None:
        """Move the closed temporary data to the final path in one step."""

    @abstractmethod
    def discard(self) -> None:
        """Close and drop the temporary data; idempotent and safe after a failed publish."""


class AtomicWriteStream:
    """A writable stream that publishes its data only on a clean close.

    Leaving a ``with`` block by an exception, a failing flush, or garbage collection without
    close() discards the temporary data, so a failed task never leaves output behind.
    """

    def __init__(self, sink: AtomicSink, stream: IO[Any]) -> None:
        self._sink = sink
        self._stream = stream
        self._finished = False

    @classmethod
    def open(cls, sink: AtomicSink, fmt: Format) -> AtomicWriteStream:
        """Open ``sink`` and wrap it in ``fmt``'s writer chain."""
        raw = sink.open()
        try:
            stream = fmt.pipe_writer(raw)
        except BaseException:
            sink.discard()
            raise
        return cls(sink, stream)

    def write(self, data: Any) -> int:
        return self._stream.write(data)

    def writelines(self, lines: Iterable[Any]) -> None:
        self._stream.writelines(lines)

    def flush(self) -> None:
        self._stream.flush()

    @property
    def closed(self) -> bool:
        return self._finished

    def close(self) -> None:
        """Flush the chain and publish; if either fails, discard and re-raise."""
        if self._finished:
            return
        self._finished = True
        try:
            self._stream.close()
            self._sink.publish()
        except BaseException:
            self._sink.discard()
            raise

    def discard(self) -> None:
        """Give up: close the chain and drop the temporary data without publishing."""
        if self._finished:
            return
        self._finished = True
        try:
            with contextlib.suppress(Exception):
                self._stream.close()
        finally:
            self._sink.discard()

    def __enter__(self) -> AtomicWriteStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here: encoding, name, writable(), fileno(), ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.discard()


def open_formatted(
    mode: str,
    fmt: Format | None,
    open_raw: Callable[[], IO[bytes]],
    make_sink: Callable[[], AtomicSink],
) -> IO[Any]:
    """Open a target: read through ``fmt`` from ``open_raw()``, or write atomically via a sink.

    The one place that turns a mode and a format into a stream, for every kind of target.
    """
    writing, binary = parse_mode(mode)
    chain = resolve_format(fmt, binary)
    if writing:
        return AtomicWriteStream.open(make_sink(), chain)  # type: ignore[return-value]
    raw = open_raw()
    try:
        return chain.pipe_reader(raw)
    except BaseException:
        raw.close()
        raise


class FileSystemTarget(Target):
    """A target at a path in some FileSystem; equal to another of its type at the same path."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: str = os.fspath(path)

    @property
    @abstractmethod
    def fs(self) -> FileSystem:
        """The filesystem this target lives in."""

    @abstractmethod
    def open(self, mode: str = "r") -> IO[Any]:
        """A stream over the target; writes ('w', 'wb') are atomic."""

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def remove(self) -> None:
        """Remove the target; TargetError if it does not exist."""
        self.fs.remove(self.path)

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """Yield a temporary path beside this one; on success move it into place, never over.

        On an exception the temporary file or directory is removed and the error re-raised;
        TargetError if the block wrote nothing, FileAlreadyExists if the target appeared meanwhile.
        """
        temp = temp_path_beside(self.path)
        parent = os.path.dirname(self.path.rstrip("/"))
        if parent:
            # Stores without directories (object stores) need no parent.
            with contextlib.suppress(NotImplementedError):
                self.fs.mkdir(parent, parents=True, raise_if_exists=False)
        try:
            yield temp
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(temp):
                    self.fs.remove(temp, recursive=True)
            raise
        if not self.fs.exists(temp):
            raise TargetError(f"cannot move {temp} into place at {self.path}: nothing was written")
        self.fs.rename_dont_move(temp, self.path)

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self), self.path))


def targets_exist(targets: Iterable[Target]) -> dict[Target, bool]:
    """exists() for many targets, with one exists_many() call per filesystem.

    Only targets that keep FileSystemTarget.exists are batched; an override is always honoured.
    """
    result: dict[Target, bool] = {}
    by_fs: dict[FileSystem, list[FileSystemTarget]] = {}
    for target in targets:
        if isinstance(target, FileSystemTarget) and type(target).exists is FileSystemTarget.exists:
            by_fs.setdefault(target.fs, []).append(target)
        else:
            result[target] = target.exists()
    for fs, group in by_fs.items():
        answers = fs.exists_many(target.path for target in group)
        for target in group:
            result[target] = answers[target.path]
    return result
