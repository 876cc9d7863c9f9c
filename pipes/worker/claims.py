"""Which of the tasks sent to a child it has started: counters in memory shared with the child.

A child may hold several tasks it has not started (runner.py: fast families). Before it
starts one it claims it here, under a lock the worker also takes to take back the tasks
not claimed yet, so a task is either started by the child or taken back, never both. The
child also records the last task it finished and where the running task's output starts
in its log; after a child dies the worker reads them to tell the task that was running
from those it finished and those it never started.

Why shared memory and not a message: the worker takes tasks back from a child that is
inside a long run(), which reads no messages until the task ends.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

# The task started last, the one finished last, the range the worker took back, a stop
# flag (SIGUSR1: start nothing more), and where the running task's output starts in its log.
_STARTED, _FINISHED, _REVOKE_FROM, _REVOKE_TO, _STOP, _LOG_START = range(6)
_FIELDS = struct.Struct("<6q")
_LOCK_WAIT = 1.0  # seconds to wait for the lock before looking at why it is held


class Claims:
    """Counters shared by the worker and one child, made before the fork.

    The lock is multiprocessing's process-shared semaphore (fork context: unlinked at
    once, no resource tracker): taking and releasing it free costs no system call. A
    child killed while it holds it (inside claim()) leaves it taken; the worker then gives
    up after _LOCK_WAIT.
    """

    def __init__(self) -> None:
        import multiprocessing  # lazy: only a worker with children needs it (about 12 ms)

        self._memory = mmap.mmap(-1, _FIELDS.size)  # anonymous and shared across fork
        self._lock: Any = multiprocessing.get_context("fork").Lock()
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

    def snapshot(self) -> tuple[int, int, int]:
        """(started, finished, log start): final once the child is gone, a snapshot before."""
        return self._get(_STARTED), self._get(_FINISHED), self._get(_LOG_START)

    def close(self) -> None:
        """Release the memory (the worker's side)."""
        self._memory.close()
