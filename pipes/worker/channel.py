"""The wire between the worker and one child: framed pickles over two pipes, plus shared counters.

Each frame is a 4-byte length and a pickle, so one read can bring several messages and one
write can send several tasks. The counters live in shared memory: the child records the
sequence number of the task it starts (under a lock, so the worker can take back tasks the
child has not started) and of the last one it finished; after a child dies the worker
reads them to tell the task that was running from those that never started.
"""

from __future__ import annotations

import itertools
import mmap
import os
import pickle
import struct
from typing import Any

_HEADER = struct.Struct("<I")
_READ_SIZE = 1 << 16


def frame(message: Any) -> bytes:
    """One message, ready to write."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of data to a blocking fd."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Whole messages out of the bytes read from one fd."""

    def __init__(self, fd: int, blocking: bool) -> None:
        self.fd = fd
        self.blocking = blocking  # a blocking fd is read once per call, a non-blocking one drained
        self._buffer = bytearray()
        self.closed = False  # end of file seen

    def read(self) -> list[Any]:
        """Read what is there (waiting for some if the fd blocks) and parse it."""
        try:
            while True:
                data = os.read(self.fd, _READ_SIZE)
                if not data:
                    self.closed = True
                    break
                self._buffer += data
                if self.blocking or len(data) < _READ_SIZE:
                    break
        except BlockingIOError:
            pass
        return self._messages()

    def read_some(self) -> list[Any]:
        """At least one message from a blocking fd, or [] at end of file."""
        messages = self._messages()
        while not messages and not self.closed:
            messages = self.read()
        return messages

    def _messages(self) -> list[Any]:
        messages = []
        buffer, at = self._buffer, 0
        while len(buffer) - at >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + size
            if end > len(buffer):
                break
            messages.append(pickle.loads(memoryview(buffer)[at + _HEADER.size : end]))
            at = end
        if at:
            del buffer[:at]
        return messages


# Shared counters: the sequence number of the task started last, of the one finished last,
# the range of sequence numbers the worker took back, a stop flag (SIGUSR1: start nothing
# more), and where the running task's output starts in its log file.
_STARTED, _FINISHED, _REVOKE_FROM, _REVOKE_TO, _STOP, _LOG_START = range(6)
_FIELDS = struct.Struct("<6q")
_LOCK_WAIT = 1.0  # seconds to wait for the lock before looking at why it is held
_SEMAPHORE = 1  # _multiprocessing.SemLock kind
_names = itertools.count()


class Shared:
    """Counters in memory shared by the worker and one child, made before the fork.

    The lock is a process-shared semaphore (what multiprocessing.Lock wraps, without its
    imports): taking and releasing it free costs no system call. A child killed while it
    holds it (inside claim()) leaves it taken; the worker then gives up after _LOCK_WAIT.
    """

    def __init__(self) -> None:
        # no stubs: a private CPython module; lazy: only a worker with children needs it
        import _multiprocessing  # type: ignore[import-not-found]

        self._memory = mmap.mmap(-1, _FIELDS.size)  # anonymous and shared across fork
        name = f"/pipes-{os.getpid()}-{next(_names)}"
        self._lock = _multiprocessing.SemLock(_SEMAPHORE, 1, 1, name, True)  # True: unlinked
        self._worker_pid = os.getpid()

    def _get(self, index: int) -> int:
        value: int = struct.unpack_from("<q", self._memory, index * 8)[0]
        return value

    def _set(self, index: int, value: int) -> None:
        struct.pack_into("<q", self._memory, index * 8, value)

    # --- the child's side -----------------------------------------------------------------

    def claim(self, seq: int) -> bool:
        """Mark task `seq` started, unless the worker took it back or said stop (child)."""
        while not self._lock.acquire(True, _LOCK_WAIT):
            if os.getppid() != self._worker_pid:  # the worker died holding the lock
                os._exit(1)
        try:
            _, _, start, end, stop, _ = _FIELDS.unpack_from(self._memory)
            if stop or start <= seq < end:
                return False
            self._set(_STARTED, seq)
            return True
        finally:
            self._lock.release()

    def finished(self, seq: int) -> None:
        """Task `seq` ended and its outcome is sent, or is a DONE the child still holds."""
        self._set(_FINISHED, seq)

    def log_start(self, offset: int) -> None:
        """Where the started task's output begins in its log file."""
        self._set(_LOG_START, offset)

    # --- the worker's side ----------------------------------------------------------------

    def stop(self) -> None:
        """Let the child start no more tasks. Safe in a signal handler: no lock, no I/O."""
        self._set(_STOP, 1)

    def revoke(self, below: int) -> int | None:
        """Take back every task numbered from the started one + 1 up to `below`.

        Returns the started task's number (tasks above it are now taken back), or None if
        the lock stayed taken: a child that died or was stopped (SIGSTOP) inside claim().
        """
        if not self._lock.acquire(True, _LOCK_WAIT):
            return None
        try:
            started = self._get(_STARTED)
            self._set(_REVOKE_FROM, started + 1)
            self._set(_REVOKE_TO, below)
            return started
        finally:
            self._lock.release()

    def finished_so_far(self) -> int:
        """The last task the child finished (the worker's side; the child may be running)."""
        return self._get(_FINISHED)

    def after_death(self) -> tuple[int, int, int]:
        """(started, finished, log start) as the child left them; read once it is gone.

        Read while it lives, it is a snapshot: good enough to find what it is running."""
        return self._get(_STARTED), self._get(_FINISHED), self._get(_LOG_START)

    def close(self) -> None:
        """Release the memory (the worker's side)."""
        self._memory.close()
