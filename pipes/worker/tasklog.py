"""Log files for tasks run in children: where their output goes, what tail comes back.

A child points file descriptors 1 and 2 at a log file, so output of programs the task
starts is caught too. With `[worker] task_log_dir` each task appends to its own file there,
kept; without it the child keeps one private file that it copies to the worker's stderr
and empties after each task, so output still reaches the terminal (each task's in one
piece, when it ends) and a task that prints nothing costs one fstat.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sys

TAIL_BYTES = 16 * 1024
logger = logging.getLogger("pipes.worker")


def tail_of_fd(fd: int, start: int = 0) -> str | None:
    """The last TAIL_BYTES written to fd from offset `start` on, from a line start if cut."""
    size = os.fstat(fd).st_size
    if size <= start:
        return None
    begin = max(start, size - TAIL_BYTES)
    data = os.pread(fd, size - begin, begin)
    if begin > start:  # cut mid-file: drop the partial first line, if another line follows
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
    return data.decode("utf-8", errors="replace") or None


def tail_of_file(path: str, start: int = 0) -> str | None:
    """The tail of the file at path (see tail_of_fd); None if it is missing or empty."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return tail_of_fd(fd, start)
    finally:
        os.close(fd)


def task_log_path(log_dir: str, key: str) -> str:
    """The file in task_log_dir that the task with scheduler id `key` appends to."""
    return os.path.join(log_dir, f"{key}.log")


class Capture:
    """A child's stdout/stderr capture: per task file in log_dir, else one private file."""

    def __init__(self, log_dir: str | None, private_path: str | None) -> None:
        self.log_dir = log_dir
        self.private_path = private_path
        self._fd = -1  # the file fds 1 and 2 point at while a task runs
        self._saved: tuple[int, int] | None = None
        self._start = 0
        self._terminal = -1  # the worker's stderr, where private-file output is copied

    def start(self) -> None:
        """Make print() reach fds 1 and 2; without log_dir, point them at the private file."""
        _streams_to_fds()
        if self.log_dir is None and self.private_path is not None:
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(self.private_path, flags, 0o600)
            _flush()
            self._terminal = os.dup(2)
            os.dup2(self._fd, 1)
            os.dup2(self._fd, 2)

    def worker_fds(self) -> list[int]:
        """Descriptors of the worker's own (its stderr) that this capture holds."""
        return [self._terminal] if self._terminal >= 0 else []

    def begin(self, key: str) -> int:
        """Start capturing one task's output; returns where its output starts in the file."""
        if self.log_dir is None:
            return 0
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        self._fd = os.open(task_log_path(self.log_dir, key), flags, 0o644)
        self._start = os.fstat(self._fd).st_size  # retries and later runs append
        _flush()
        self._saved = os.dup(1), os.dup(2)
        os.dup2(self._fd, 1)
        os.dup2(self._fd, 2)
        return self._start

    def end(self) -> str | None:
        """Stop capturing the task's output and return its tail (None if it wrote nothing)."""
        _flush()
        if self._fd < 0:
            return None
        tail = tail_of_fd(self._fd, self._start)
        if self._saved is not None:
            os.dup2(self._saved[0], 1)
            os.dup2(self._saved[1], 2)
            for fd in (*self._saved, self._fd):
                os.close(fd)
            self._saved, self._fd = None, -1
        elif tail is not None:
            lost = _copy(self._fd, self._terminal)
            os.ftruncate(self._fd, 0)  # the private file holds one task's output at a time
            if lost:
                # fds 1 and 2 point at the private file: the warning reaches the terminal
                # with the next task's output, if the terminal takes it then
                logger.warning("%s", lost)
        return tail


def _streams_to_fds() -> None:
    """Line-buffered sys.stdout / sys.stderr on fds 1 / 2.

    Line buffering keeps stdout and stderr lines in order in the log, and lines printed
    before a crash in it. The worker's streams may be objects that bypass the descriptors
    (a test runner's capture, a notebook's): a child gets its own on the descriptors.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        try:
            on_fd = stream is not None and stream.fileno() == fd
        except (AttributeError, OSError, ValueError):
            on_fd = False
        if on_fd and isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
        else:
            setattr(sys, name, open(fd, "w", buffering=1, closefd=False))


def _copy(source: int, target: int) -> str | None:
    """All of file `source` to `target`; None, or what was lost and why (for a warning).

    A closed or full terminal must not fail the task. sendfile() refuses (EINVAL) a target
    opened with O_APPEND, as `>> log 2>&1` opens it: then the bytes go by read/write.
    """
    offset, size = 0, os.fstat(source).st_size
    try:
        while offset < size:
            try:
                sent = os.sendfile(target, source, offset, size - offset)
            except OSError as err:
                if err.errno not in _NO_SENDFILE:
                    raise
                return _copy_by_read(source, target, offset, size)
            if sent == 0:
                return None
            offset += sent
    except OSError as err:
        return f"lost {size - offset} bytes of task output on the way to stderr: {err}"
    return None


# sendfile() cannot write to this target: O_APPEND (EINVAL), or no sendfile support at all.
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE}


def _copy_by_read(source: int, target: int, offset: int, size: int) -> str | None:
    while offset < size:
        chunk = os.pread(source, min(1 << 20, size - offset), offset)
        if not chunk:
            return None
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(target, view) :]
        except OSError as err:
            return f"lost {size - offset} bytes of task output on the way to stderr: {err}"
        offset += len(chunk)
    return None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stream must not fail the task
                pass
