"""The tail of what a task printed or logged while it ran in the worker's own process.

Tasks run in children have their file descriptors redirected to a log file instead (see
child.py); in-process, output still goes where it always went and a copy of its end is
kept for the status page.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

TAIL_CHARS = 16 * 1024
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """text with each lone surrogate replaced by U+FFFD, so it encodes as UTF-8.

    Undecodable bytes (a Latin-1 file name under LC_ALL=C) reach Python strings as lone
    surrogates (surrogateescape); the scheduler must get text, so they become U+FFFD.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


class Tail:
    """The last `limit` characters written to it."""

    def __init__(self, limit: int = TAIL_CHARS) -> None:
        self.limit = limit
        self._chunks: collections.deque[str] = collections.deque()
        self._size = 0

    def add(self, text: str) -> None:
        """Keep text, dropping whole old chunks beyond the limit."""
        if not text:
            return
        self._chunks.append(text)
        self._size += len(text)
        while self._size - len(self._chunks[0]) >= self.limit:
            self._size -= len(self._chunks.popleft())

    def text(self) -> str | None:
        """What was kept, starting at a line start when the cut fell mid-line; None if empty."""
        text = last_lines("".join(self._chunks), self.limit)
        return valid_text(text) if text is not None else None


def last_lines(text: str, limit: int) -> str | None:
    """The end of text, at most `limit` characters, from a line start where possible."""
    if len(text) > limit:
        text = text[-limit:]
        newline = text.find("\n")
        if 0 <= newline < len(text) - 1:
            text = text[newline + 1 :]
    return text or None


class _Tee:
    """A text stream that writes through to another and keeps a copy in the current Tail."""

    def __init__(self, target: TextIO, capture: TailCapture) -> None:
        self._target = target
        self._capture = capture

    def write(self, text: str) -> int:
        tail = self._capture.tail
        if tail is not None:
            tail.add(text)
        return self._target.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, ...
        return getattr(self._target, name)


class _TailHandler(logging.Handler):
    def __init__(self, capture: TailCapture) -> None:
        super().__init__()
        self.capture = capture
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        tail = self.capture.tail
        if tail is None:  # between tasks: the worker's own records
            return
        try:
            tail.add(self.format(record) + "\n")
        except Exception:  # a record that cannot be formatted must not fail the task
            self.handleError(record)


class TailCapture:
    """Keeps the end of sys.stdout, sys.stderr and log records, one task at a time.

    Installed once for many tasks (a run's inline tasks): the streams and the logging
    handler stay in place, and each task only gets a fresh Tail with start().
    """

    def __init__(self) -> None:
        self.tail: Tail | None = None  # the running task's, else None: nothing is kept
        self._handler = _TailHandler(self)
        self._streams: tuple[Any, Any] | None = None

    def install(self) -> None:
        """Tee sys.stdout and sys.stderr and add the logging handler, if not done yet."""
        if self._streams is None:
            stdout, stderr = self._streams = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _Tee(stdout, self), _Tee(stderr, self)
            logging.root.addHandler(self._handler)

    def uninstall(self) -> None:
        """Put sys.stdout, sys.stderr and the logging handlers back as install() found them."""
        if self._streams is not None:
            logging.root.removeHandler(self._handler)
            sys.stdout, sys.stderr = self._streams
            self._streams = None
            self.tail = None

    def start(self) -> Tail:
        """Keep what is written from now on in a fresh Tail (installing first if needed)."""
        self.install()
        self.tail = Tail()
        return self.tail

    def stop(self) -> None:
        """Keep nothing more until the next start()."""
        self.tail = None


@contextlib.contextmanager
def captured_tail() -> Iterator[Tail]:
    """Keep the end of sys.stdout, sys.stderr and log records written during the block."""
    capture = TailCapture()
    try:
        yield capture.start()
    finally:
        capture.uninstall()
