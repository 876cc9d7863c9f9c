"""Uploads to a (temporary) HDFS path that finish only on commit(): spooled, or streamed.

The target's sink writes through one of these and renames the result into place afterwards;
close() never uploads, so a task that fails mid-write sends nothing (spooled) or leaves only
the temporary path (streamed), which the sink removes.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from pipes.exceptions import TargetError

_END = object()


class Upload(io.RawIOBase):
    """A writable stream whose data reaches HDFS for good only when commit() returns."""

    # Whether anything may exist at the path yet (a failed write then removes it).
    started = False

    def writable(self) -> bool:
        return True

    def commit(self) -> None:
        """Finish the upload; raises a TargetError if it failed."""
        raise NotImplementedError

    def abort(self) -> None:
        """Give up; idempotent, never raises."""
        raise NotImplementedError


class SpoolUpload(Upload):
    """Bytes go to a local temporary file, sent by ``send(file)`` on commit (any client)."""

    def __init__(self, send: Callable[[IO[bytes]], None]) -> None:
        self._send = send
        self._file = tempfile.NamedTemporaryFile(prefix="pipes-hdfs-", delete=False)

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def commit(self) -> None:
        self.started = True
        self._file.flush()
        self._file.seek(0)
        try:
            self._send(self._file)
        finally:
            self.abort()

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._file.name)


class StreamUpload(Upload):
    """Bytes stream to HDFS while the task writes: ``send(chunks)`` runs on a thread.

    The queue is bounded, so a slow datanode slows the writer instead of filling memory.
    """

    def __init__(self, send: Callable[[Iterator[bytes]], None], path: str) -> None:
        self._send = send
        self._path = path
        self._queue: queue.Queue[object] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            self._send(self._chunks())
        except BaseException as err:  # handed to the writer's thread by commit()/write()
            self._error = err

    def _chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item:  # an empty chunk would end a chunked HTTP body early
                yield item  # type: ignore[misc]

    def _put(self, item: object) -> None:
        assert self._thread is not None
        while self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.2)
                return
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            if isinstance(self._error, TargetError):
                raise self._error
            raise TargetError(f"cannot write {self._path}: {self._error}") from self._error

    def write(self, data: Any) -> int:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pipes-hdfs-upload")
            self.started = True
            self._thread.start()
        # A view of the buffered layer's own buffer is reused once write() returns: copy it.
        self._put(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def commit(self) -> None:
        if self._thread is None:  # nothing written: still create the (empty) file
            self.write(b"")
        assert self._thread is not None
        self._put(_END)
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        # End the body cleanly rather than cutting the connection: a cut one leaves the datanode
        # closing the file after we delete it, so the temporary file could reappear.
        with contextlib.suppress(TargetError):
            self._put(_END)
        self._thread.join()
