"""Live progress of a run: one updating line on a terminal, a log line now and then otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

logger = logging.getLogger("pipes.worker")


class Progress:
    """Shows done / running / pending / failed counts and elapsed time while a run goes."""

    def __init__(self, stream: TextIO | None = None, log_every: float = 30.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else log_every
        self._started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def due(self) -> bool:
        """Whether enough time passed to show the counts again (callers count only then)."""
        return time.monotonic() - self._last >= self.every

    def update(self, done: int, running: int, pending: int, failed: int) -> None:
        """Show the counts if enough time passed since they were last shown."""
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        elapsed = now - self._started
        text = (
            f"done {done}, running {running}, pending {pending}, failed {failed} ({elapsed:.0f}s)"
        )
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self.stream.flush()
            self._shown = True
        else:
            logger.info("progress: %s", text)

    def close(self) -> None:
        """End the updating line so later output starts on a fresh line."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
