"""The wire between the worker and one child: framed pickles over a pipe each way.

Each frame is a 4-byte length and a pickle, so one read can bring several messages and one
write can send several tasks. Which sent task a child has started is not on the wire but
in memory shared with it (claims.py).
"""

from __future__ import annotations

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
