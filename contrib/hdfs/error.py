"""Turning HDFS failures into one-line pipes errors, retrying the transient ones a few times."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipes.exceptions import (
    FileAlreadyExists,
    NotADirectory,
    TargetError,
    TargetNotFound,
    TargetPermissionDenied,
    TargetUnavailable,
)

# Java exception names (WebHDFS RemoteException) and FsShell phrases, mapped to pipes errors.
_KINDS: list[tuple[tuple[str, ...], type[TargetError]]] = [
    (("Path is not a file", "Is a directory"), TargetError),
    (("FileNotFoundException", "No such file or directory"), TargetNotFound),
    (("AccessControlException", "Permission denied", "SecurityException"), TargetPermissionDenied),
    (("FileAlreadyExistsException", "File exists"), FileAlreadyExists),
    (("ParentNotDirectoryException", "Not a directory", "is not a directory"), NotADirectory),
    (
        (
            "StandbyException",
            "RetriableException",
            "SafeModeException",
            "Connection refused",
            "ConnectException",
            "Max retries exceeded",
            "timed out",
            "UnknownHostException",
        ),
        TargetUnavailable,
    ),
]


def classify(text: str) -> type[TargetError]:
    """The pipes error class for an HDFS failure described by ``text``."""
    for needles, cls in _KINDS:
        if any(needle in text for needle in needles):
            return cls
    return TargetError


def with_retries[T](call: Callable[[], T], attempts: int, delay: float) -> T:
    """call(), again after TargetUnavailable up to ``attempts`` times in all, doubling the wait."""
    for attempt in range(1, max(attempts, 1) + 1):
        try:
            return call()
        except TargetUnavailable:
            if attempt >= attempts:
                raise
            time.sleep(delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
